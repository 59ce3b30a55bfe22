"""Where the project keeps downloaded assets and generated data, in one place.

``TEXT_RECOGNIZER_HOME`` overrides the default, ``~/.cache/text-recognizer``.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("TEXT_RECOGNIZER_HOME", Path.home() / ".cache" / "text-recognizer"))


def fonts_dir() -> Path:
    return home() / "fonts"


def corpus_dir() -> Path:
    return home() / "corpus"


def iam_dir() -> Path:
    return home() / "iam"


def repo_root() -> Path:
    """The source checkout (where ``configs/`` and ``artifacts/`` live) when running from one."""
    return Path(__file__).resolve().parent.parent


def shipped_artifact() -> Path:
    """The model shipped in the repository; ``stage`` replaces it only when asked explicitly."""
    return repo_root() / "artifacts" / "line-default"


def default_artifact() -> Path:
    return Path(os.environ.get("TEXT_RECOGNIZER_MODEL", shipped_artifact()))

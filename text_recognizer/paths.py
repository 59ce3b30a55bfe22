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


def packaged_artifact() -> Path:
    """Where an installed wheel keeps the shipped model (copied there by ``setup.py`` at build time)."""
    return Path(__file__).resolve().parent / "_model" / "line-default"


def default_artifact() -> Path:
    """``TEXT_RECOGNIZER_MODEL``, else the checkout's ``artifacts/line-default``, else the installed copy."""
    if os.environ.get("TEXT_RECOGNIZER_MODEL"):
        return Path(os.environ["TEXT_RECOGNIZER_MODEL"])
    checkout = shipped_artifact()
    packaged = packaged_artifact()
    return packaged if not checkout.is_dir() and packaged.is_dir() else checkout

"""Setuptools hook: the wheel carries the shipped model (``artifacts/line-default``) as package data.

The model stays at ``artifacts/line-default`` in the repository; ``build_py`` copies it to
``text_recognizer/_model/line-default`` in the build, where :func:`text_recognizer.paths.default_artifact`
finds it once installed. All other metadata is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODEL = Path(__file__).resolve().parent / "artifacts" / "line-default"


class BuildPyWithModel(build_py):
    def run(self) -> None:
        super().run()
        if not (MODEL / "manifest.json").is_file():
            raise SystemExit(f"{MODEL}/manifest.json is missing: the wheel must ship the default model")
        target = Path(self.build_lib) / "text_recognizer" / "_model" / "line-default"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(MODEL, target)


setup(cmdclass={"build_py": BuildPyWithModel})

"""The systems compared: ours and the peers, where each is installed, and how to set the peers up.

The peers are installed for the benchmark only, never as dependencies of the product:

* Tesseract: Debian's ``tesseract-ocr`` and ``tesseract-ocr-eng`` (``make bench`` installs them with apt-get
  when it may).
* RapidOCR: PyPI ``rapidocr`` with ``onnxruntime`` (the same version as ours) in a separate virtual
  environment, ``.cache/bench-venv``. Its models ship in the wheel; the worker refuses network access, so a
  version that would download them fails instead of being measured.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

RAPIDOCR_VERSION = "3.10.0"
TESSERACT_INSTALL = "apt-get install tesseract-ocr tesseract-ocr-eng"


@dataclass(frozen=True)
class System:
    """One OCR system. ``python`` runs its worker; None when it is not available, ``missing`` saying why."""

    name: str
    label: str
    python: str | None
    missing: str | None = None


def ours() -> System:
    return System("ours", "text-recognizer (ours)", sys.executable)


def tesseract() -> System:
    label = "Tesseract"
    if shutil.which("tesseract") is None:
        return System("tesseract", label, None, f"not installed (`{TESSERACT_INSTALL}`)")
    langs = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True)
    if "eng" not in (langs.stdout + langs.stderr).split():
        return System("tesseract", label, None, "no English data (`apt-get install tesseract-ocr-eng`)")
    return System("tesseract", label, sys.executable)


def rapidocr(venv: Path, setup: bool) -> System:
    """RapidOCR in ``venv``; created and installed first when ``setup`` and it is not there yet."""
    label = "RapidOCR"
    python = venv / "bin" / "python"
    if not _imports(python, "rapidocr") and setup:
        print(f"setting up RapidOCR {RAPIDOCR_VERSION} in {venv} (benchmark only)", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            pins = [f"rapidocr=={RAPIDOCR_VERSION}", f"onnxruntime=={version('onnxruntime')}"]
            subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True)
        except subprocess.CalledProcessError as e:
            return System("rapidocr", label, None, f"could not be installed ({e})")
    if not _imports(python, "rapidocr"):
        return System("rapidocr", label, None, f"not installed in {venv} (run without --no-setup)")
    return System("rapidocr", label, str(python))


def _imports(python: Path, module: str) -> bool:
    if not python.exists():
        return False
    return subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode == 0

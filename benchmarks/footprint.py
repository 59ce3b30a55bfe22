"""What each system takes on disk: its model files and the software it installs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DIST_SIZES = Path(__file__).with_name("dist_sizes.py")
#: Debian packages of Tesseract itself (the shared system libraries it links are not counted)
TESSERACT_PACKAGES = ("tesseract-ocr", "tesseract-ocr-eng", "tesseract-ocr-osd", "libtesseract5", "liblept5")


def dir_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (or of ``path`` itself), symbolic links not followed."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def python_dists_size(python: str, requirement: str | None = None) -> dict[str, int]:
    """``{distribution: bytes}`` that ``requirement`` brought into ``python``'s environment (None: all)."""
    cmd = [python, str(DIST_SIZES), *([requirement] if requirement else [])]
    sizes: dict[str, int] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return sizes


def fresh_venv_size(spec: str, cwd: Path) -> dict[str, int]:
    """Install ``spec`` (e.g. ``.[serve]``) into a new virtual environment and measure it (needs PyPI).

    Raises:
        subprocess.CalledProcessError: pip could not install it.
    """
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        subprocess.run([python, "-m", "pip", "install", "-q", spec], cwd=cwd, check=True)
        sizes = python_dists_size(python)
    sizes.pop("text-recognizer", None)
    return sizes


def dpkg_size(packages: tuple[str, ...]) -> int | None:
    """Installed size in bytes of those of ``packages`` that are installed (None without dpkg)."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status} ${Installed-Size}\n", *packages],
            capture_output=True,
            text=True,
        ).stdout
    except FileNotFoundError:
        return None
    kib = [
        int(size)
        for status, size in (line.split() for line in out.splitlines() if line.strip())
        if status == "installed" and size.isdigit()
    ]
    return sum(kib) * 1024 if kib else None


def tesseract_model_size(lang: str = "eng") -> int | None:
    """Bytes of Tesseract's ``<lang>.traineddata`` (read from ``tesseract --list-langs``)."""
    try:
        out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True)
    except FileNotFoundError:
        return None
    match = re.search(r'"([^"]+)"', out.stdout + out.stderr)
    folder = Path(match.group(1)) if match else Path(os.environ.get("TESSDATA_PREFIX", "/nonexistent"))
    path = folder / f"{lang}.traineddata"
    return path.stat().st_size if path.exists() else None


def rapidocr_model_size(python: str) -> int:
    """Bytes of the ONNX models shipped in the installed ``rapidocr`` wheel."""
    code = (
        "import pathlib, rapidocr; models = pathlib.Path(rapidocr.__file__).parent / 'models'; "
        "print(sum(p.stat().st_size for p in models.glob('*.onnx')))"
    )
    return int(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)

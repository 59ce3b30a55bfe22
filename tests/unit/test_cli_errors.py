"""The command line off the happy path: a missing extra, unreadable images among good ones, make's stamps."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from text_recognizer.cli import missing_extra_message
from text_recognizer.paths import default_artifact

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "text_recognizer" / "serving" / "examples" / "line-1.png"

BLOCKING_MAIN = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # as if the extra were not installed
sys.argv = ["text-recognizer", *sys.argv[2:]]
from text_recognizer.cli import main
main()
"""


def run(args: list[str], blocked: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", BLOCKING_MAIN, blocked, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [("torch", ["stage", "x.ckpt"], "train"), ("fastapi", ["serve"], "serve"), ("cv2", ["synth"], "train")],
)
def test_a_missing_extra_is_one_line_naming_it(
    blocked: str, args: list[str], extra: str, tmp_path: Path
) -> None:
    out = run(args, blocked, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: this command needs {blocked}, which is not installed: pip install 'text-recognizer[{extra}]'"
    ]


def test_unknown_modules_are_not_blamed_on_an_extra() -> None:
    assert missing_extra_message(ModuleNotFoundError("No module named 'nope'", name="nope")) is None


def test_predict_reads_every_file_and_fails_at_the_end(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = tmp_path / "good.png"
    shutil.copy(EXAMPLE, good)
    out = run(["predict", str(good), str(bad), str(tmp_path / "missing.png"), str(good), "--json"])
    assert out.returncode == 2
    assert [ln.count('"image"') for ln in out.stdout.splitlines()] == [1, 1]
    errors = out.stderr.strip().splitlines()
    assert errors[0] == f"error: {bad}: not a readable image (not PNG, JPEG, GIF, BMP, TIFF or WebP data)"
    assert errors[1] == f"error: {tmp_path / 'missing.png'}: file not found"
    assert errors[2] == "error: 2 of 4 image(s) could not be read"
    assert "BytesIO" not in out.stderr


def test_predict_without_a_model_says_how_to_get_one(tmp_path: Path) -> None:
    out = run(["predict", str(EXAMPLE), "--model", str(tmp_path / "none")])
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "text-recognizer stage CHECKPOINT" in lines[0], out.stderr


def test_default_model_is_found_in_the_checkout() -> None:
    assert (default_artifact() / "manifest.json").is_file()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_mlflow_ui_installs_once_and_takes_the_port(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for stamp in (".stamp-dev", ".stamp-mlflow", "bin/python"):
        (venv / stamp).touch()
    dry = subprocess.run(
        ["make", "-n", "mlflow-ui", f"VENV={venv}", "MLFLOW_PORT=5123"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "pip install" not in dry
    assert "--port 5123" in dry
    (venv / ".stamp-mlflow").unlink()
    dry = subprocess.run(
        ["make", "-n", "mlflow-ui", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True
    )
    assert "pip install -q mlflow" in dry.stdout and "--port 5000" in dry.stdout

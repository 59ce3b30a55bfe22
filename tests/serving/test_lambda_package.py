"""The slim ``[lambda]`` extra: nothing of the web page or training, and the handler works with only that."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from text_recognizer.paths import default_artifact

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "gradio",
    "pandas",
    "matplotlib",
    "opencv-python-headless",
    "opencv-python",
    "fonttools",
    "torch",
}
#: modules the handler must not import: the page, plotting, image warping, fonts, training, the web framework
BLOCKED = ["gradio", "pandas", "matplotlib", "cv2", "fontTools", "torch", "lightning", "fastapi", "uvicorn"]

HANDLER_SCRIPT = """
import importlib.abc, json, sys

BLOCKED = set(sys.argv[1].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the Lambda handler imported {name}")
        return None

sys.meta_path.insert(0, Block())
from text_recognizer.serving.lambda_handler import handler

health = {"version": "2.0", "rawPath": "/health", "requestContext": {"http": {"method": "GET"}}}
answer = handler(health, None)
direct = handler({"image": sys.argv[2]}, None)
print(json.dumps({"health": answer, "direct": direct,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
"""


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_lambda_extra_and_base_dependencies_are_slim() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = requirement_names(project["dependencies"])
    lam = requirement_names(project["optional-dependencies"]["lambda"])
    assert not (base | lam) & FORBIDDEN, (base | lam) & FORBIDDEN
    assert {"onnxruntime", "pydantic", "httpx", "sqlalchemy"} <= lam
    assert {"numpy", "pillow"} <= base


def run_handler(python: str, env: dict[str, str], cwd: Path) -> dict[str, object]:
    image = (ROOT / "text_recognizer" / "serving" / "examples" / "line-1.png").read_bytes()
    import base64

    out = subprocess.run(
        [python, "-c", HANDLER_SCRIPT, ",".join(BLOCKED), base64.b64encode(image).decode()],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def check_answers(result: dict[str, object]) -> None:
    health = result["health"]
    assert isinstance(health, dict) and health["statusCode"] == 200, health
    assert json.loads(health["body"])["status"] == "ok"
    direct = result["direct"]
    assert isinstance(direct, dict) and direct.get("pred"), direct
    assert result["loaded"] == []


def test_handler_answers_without_page_training_or_web_framework(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TEXT_RECOGNIZER_HOME": str(tmp_path),
        "TEXT_RECOGNIZER_DB": f"sqlite:///{tmp_path / 'm.db'}",
        "TEXT_RECOGNIZER_MODEL": str(default_artifact()),
    }
    check_answers(run_handler(sys.executable, env, tmp_path))


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.slow
def test_fresh_venv_with_the_lambda_extra(tmp_path: Path) -> None:
    """``pip install .[lambda]`` into a new virtual environment (from PyPI), then the handler of the installed
    package alone, outside the repository, with the model the wheel ships. Prints the environment's size."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-cache-dir", f"{ROOT}[lambda]"],
        check=True,
        timeout=1200,
        cwd=tmp_path,
    )
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    assert (site / "text_recognizer" / "_model" / "line-default" / "manifest.json").is_file()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXT_RECOGNIZER_", "PYTHON"))}
    env |= {"TEXT_RECOGNIZER_HOME": str(tmp_path), "TEXT_RECOGNIZER_DB": f"sqlite:///{tmp_path / 'm.db'}"}
    check_answers(run_handler(python, env, tmp_path))
    size = dir_size(site)
    print(f"[lambda] site-packages: {size / 2**20:.0f} MiB")
    assert size < 300 * 2**20

"""The Dockerfiles cannot be built here: check that what they copy exists and what they run is real."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import typer

from text_recognizer.cli import app

DOCKER = Path(__file__).resolve().parents[2] / "docker"
ROOT = DOCKER.parent


def instructions(name: str) -> list[tuple[str, str]]:
    lines = [
        ln for ln in (DOCKER / name).read_text().replace("\\\n", " ").splitlines() if ln and ln[0] != "#"
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines if ln.strip()]


@pytest.mark.parametrize("name", ["Dockerfile.lambda", "Dockerfile.server"])
def test_official_base_and_copied_paths_exist(name: str) -> None:
    steps = instructions(name)
    assert steps[0][0] == "FROM"
    # the Lambda base is Amazon Linux 2023 (python:3.12+): onnxruntime >= 1.18 has no wheel for AL2
    assert steps[0][1] == {"Dockerfile.lambda": "public.ecr.aws/lambda/python:3.12"}.get(
        name, "python:3.11-slim"
    )
    for kind, args in steps:
        if kind == "COPY":
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), (
                    f"{name}: COPY source {source} is missing from the repository"
                )
        if kind == "RUN" and "pip install" in args:
            extra = "lambda" if name == "Dockerfile.lambda" else "serve"
            assert re.search(rf"\[{extra}[],]", args), f"{name}: installs without the [{extra}] extra"
            copied = " ".join(a for k, a in steps if k == "COPY")
            assert "artifacts/line-default" in copied and "setup.py" in copied, "the wheel ships the model"


def test_lambda_cmd_is_the_handler() -> None:
    cmd = json.loads(dict(instructions("Dockerfile.lambda"))["CMD"])
    module, _, attr = cmd[0].rpartition(".")
    handler = getattr(importlib.import_module(module), attr)
    assert callable(handler) and handler.__name__ == "handler"


def test_server_cmd_uses_real_options() -> None:
    cmd = json.loads(dict(instructions("Dockerfile.server"))["CMD"])
    assert cmd[:2] == ["text-recognizer", "serve"]
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    options = {opt for param in serve.params for opt in param.opts}
    assert {a for a in cmd[2:] if a.startswith("--")} <= options

"""Serving and the predictor never import torch or Lightning, not even indirectly."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "text_recognizer.inference.predictor",
    "text_recognizer.serving.api",
    "text_recognizer.serving.core",
    "text_recognizer.serving.lambda_handler",
    "text_recognizer.serving.monitor",
    "text_recognizer.serving.store",
    "text_recognizer.serving.ui",
    "text_recognizer.serving.fetch",
]


def test_no_torch_or_lightning() -> None:
    code = (
        "import sys, importlib\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "from text_recognizer.serving.ui import build_ui, LocalBackend\n"
        "from text_recognizer.serving.api import create_app\n"
        "from text_recognizer.serving.settings import ServingSettings\n"
        "create_app(ServingSettings(ui=True))\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "bad = sorted(roots & {'torch', 'lightning', 'pytorch_lightning'})\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lambda_handler_import_does_no_work() -> None:
    code = (
        "import sys\n"
        "import text_recognizer.serving.lambda_handler as h\n"
        "assert h._service is None\n"
        "assert not {'onnxruntime', 'gradio', 'fastapi'} & set(sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

"""Extreme image shapes under the pixel limit cost bounded CPU (preprocessing is linear in the pixels)."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from text_recognizer.images import MAX_PIXELS, ImageError, segment_lines
from text_recognizer.serving.core import RecognitionService
from text_recognizer.serving.errors import NotAnImage
from text_recognizer.serving.settings import ServingSettings
from text_recognizer.serving.store import Store

#: the issue's target for one request of at most the size limit (the quadratic version took 527 s)
MAX_CPU_S = 10.0


def png(width: int, height: int, stripe_every: int = 0) -> bytes:
    """White ``width`` x ``height`` PNG, with a black row every ``stripe_every`` rows when given."""
    a = np.full((height, width), 255, np.uint8)
    if stripe_every:
        a[::stripe_every] = 0
    else:
        a[height // 3 : height // 3 + max(1, height // 10), width // 4 : width // 2] = 0
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_artifact: Path) -> RecognitionService:
    from text_recognizer.inference.predictor import load_predictor

    db = tmp_path_factory.mktemp("tall") / "monitoring.db"
    settings = ServingSettings(model=tiny_artifact, db=f"sqlite:///{db}", ui=False, predict_timeout_s=60)
    return RecognitionService(load_predictor(tiny_artifact), Store(settings.db), settings)


@pytest.mark.parametrize(
    "size", [(2, MAX_PIXELS // 2), (MAX_PIXELS // 2, 2), (4, MAX_PIXELS // 4), (6324, 6324), (632, 63_200)]
)
def test_extreme_aspect_ratios_take_bounded_cpu(service: RecognitionService, size: tuple[int, int]) -> None:
    data = png(*size)
    started = time.process_time()
    with contextlib.suppress(NotAnImage):  # refusing is fine; taking minutes is not
        service.predict_bytes(data, "test")
    cpu = time.process_time() - started
    assert cpu < MAX_CPU_S, f"{size[0]}x{size[1]}: {cpu:.1f} s CPU"


def test_segmentation_keeps_lines_and_caps_them(monkeypatch: pytest.MonkeyPatch) -> None:
    ink = np.zeros((600, 100), np.float32)
    for top in range(20, 600, 60):
        ink[top : top + 20, 10:90] = 1.0
    assert len(segment_lines(ink)) == 10
    monkeypatch.setattr("text_recognizer.images.MAX_LINES", 5)
    with pytest.raises(ImageError, match="10 text lines; at most 5"):
        segment_lines(ink)

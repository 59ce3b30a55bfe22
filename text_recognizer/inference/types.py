"""Result types of the predictor, shared by the predictor, evaluation, serving and UI (no torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LineResult:
    """One recognised line.

    Attributes:
        text: the line's text (no newline).
        confidence: geometric mean of the per-character probabilities, in ``[0, 1]``.
        box: ``(top, bottom, left, right)`` of the line in the (EXIF-rotated) input image, in pixels.
    """

    text: str
    confidence: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Prediction:
    """What the predictor returns for one image.

    Attributes:
        text: all lines joined by ``\\n``.
        confidence: mean of the line confidences (0 when no line was found).
        lines: one entry a line, top to bottom.
        model_version: the artifact's name and version from its manifest.
        seconds: wall time of the prediction.
        image_stats: width, height, mean brightness and polarity of the input, for drift monitoring.
    """

    text: str
    confidence: float
    lines: list[LineResult]
    model_version: str
    seconds: float
    image_stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

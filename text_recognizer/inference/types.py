"""Result types of the predictor, shared by the predictor, evaluation, serving and UI (no torch).

Boxes, everywhere (predictor, ``predict --json``, the API and the Lambda handler): absolute pixels
``[x_min, y_min, x_max, y_max]`` in the input image after its EXIF rotation, maximum exclusive (a box
``[0, 0, W, H]`` is the whole ``W`` x ``H`` image), like a Pillow crop box.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: ``(x_min, y_min, x_max, y_max)`` in input pixels, max exclusive
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class WordResult:
    """One word of a line (characters between spaces).

    Attributes:
        text: the word.
        confidence: like the line's, over the word's characters (calibrated when the line's is).
        box: where the CTC alignment emits its characters, widened by half a character pitch each side and
            clipped to the line's box (full line height); ``None`` with the attention decoder (no alignment).
    """

    text: str
    confidence: float
    box: Box | None


@dataclass(frozen=True)
class LineResult:
    """One recognised line.

    Attributes:
        text: the line's text (no newline).
        confidence: the expected share of correct characters, from the artifact's calibration map of the raw
            score (the geometric mean of the per-character probabilities); the raw score itself when the
            artifact has no calibration. In ``[0, 1]``.
        box: the line's ink, :data:`Box` convention.
        words: the line's words, left to right.
    """

    text: str
    confidence: float
    box: Box
    words: list[WordResult] = field(default_factory=list)


@dataclass(frozen=True)
class Prediction:
    """What the predictor returns for one image.

    Attributes:
        text: all lines joined by ``\\n``.
        confidence: the lines' confidences weighted by their numbers of characters (0 when no line was
            read): the expected share of correct characters of the page.
        lines: one entry a line, top to bottom. Lines read with a confidence below the predictor's
            ``min_line_confidence`` (specks, paper texture) are left out, of ``lines`` and ``text``.
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

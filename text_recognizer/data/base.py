"""What every data source yields: a grayscale image and its text.

Sources (synthetic, IAM, a labels.jsonl folder, user corrections) are plain indexable objects with no torch in
them; :mod:`text_recognizer.data.modules` turns any of them into model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        image: uint8 ``[H, W]`` grayscale, either polarity (the model input pipeline normalises it).
        text: the ground truth; the lines of a paragraph are joined by ``\\n``.
        lines: the box ``(top, bottom, left, right)`` (exclusive ends, image pixels) of each line's ink, top
            to bottom, where the source knows them (synthetic paragraphs); empty otherwise.
    """

    image: np.ndarray
    text: str
    lines: tuple[tuple[int, int, int, int], ...] = ()


class Source(Protocol):
    """A finite, deterministic, indexable data source."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...

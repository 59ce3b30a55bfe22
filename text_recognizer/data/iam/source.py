"""IAM lines or paragraphs of a split as a data :class:`~text_recognizer.data.base.Source`, and synthetic
paragraphs stacked from real lines."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from text_recognizer.data.base import Sample, Source
from text_recognizer.data.iam.forms import IAMItem
from text_recognizer.data.iam.layout import SPLITS, IAMError
from text_recognizer.data.iam.splits import load_forms
from text_recognizer.images import load_gray
from text_recognizer.paths import iam_dir

Kind = Literal["line", "paragraph"]
CROP_PADDING = 12  # pixels around a line or paragraph box, at the scan's 300 dpi
FORM_CACHE = 2  # decoded forms kept per source (lines of one form are read together)

log = logging.getLogger(__name__)


class IAMSource:
    """IAM lines or paragraphs of one split, cropped from the form images on demand.

    ``__getitem__`` gives a uint8 ``[H, W]`` crop (dark ink on light paper, 300 dpi) and its text. Crops are
    written to ``<root>/crops/<kind>/`` the first time they are read (when ``cache``), so later epochs do not
    decode whole forms.
    """

    def __init__(
        self, root: Path | None = None, kind: Kind = "line", split: str = "train", cache: bool = True
    ) -> None:
        if kind not in ("line", "paragraph"):
            raise ValueError(f"kind must be 'line' or 'paragraph', got {kind!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root) if root is not None else iam_dir()
        self.kind, self.split = kind, split
        self.forms = {f.id: f for f in load_forms(self.root) if f.split == split}
        self.items: list[IAMItem] = [
            item for f in self.forms.values() for item in (f.lines if kind == "line" else (f.paragraph(),))
        ]
        if not self.items:
            raise IAMError(f"{self.root}: no IAM {kind}s in split {split!r}")
        self.cache_dir: Path | None = self.root / "crops" / kind if cache else None
        self._decoded: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        item = self.items[index]
        return Sample(image=self._crop(item), text=item.text)

    def _form_image(self, form_id: str) -> np.ndarray:
        if form_id not in self._decoded:
            self._decoded[form_id] = load_gray(self.forms[form_id].image)
            while len(self._decoded) > FORM_CACHE:
                self._decoded.popitem(last=False)
        self._decoded.move_to_end(form_id)
        return self._decoded[form_id]

    def _crop(self, item: IAMItem) -> np.ndarray:
        """The item's box plus ``CROP_PADDING``: uint8 ``[H, W]``."""
        cached = self.cache_dir / f"{item.id}.png" if self.cache_dir else None
        if cached is not None and cached.is_file():
            return load_gray(cached)
        page = self._form_image(item.form)
        h, w = page.shape
        b = item.box
        if b.bottom > h or b.right > w or b.top < 0 or b.left < 0:
            raise IAMError(
                f"{self.forms[item.form].image}: box of {item.id} {b} lies outside the {w}x{h} image "
                "(the XML coordinates are for the full-size 300 dpi scan)"
            )
        p = CROP_PADDING
        crop = page[max(0, b.top - p) : min(h, b.bottom + p), max(0, b.left - p) : min(w, b.right + p)].copy()
        if cached is not None:
            self._store(cached, crop)
        return crop

    def _store(self, path: Path, crop: np.ndarray) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.png")
            Image.fromarray(crop).save(tmp)
            tmp.replace(path)
        except OSError as e:
            log.warning(
                "IAM: cannot cache crops in %s (%s); reading from the forms each time", path.parent, e
            )
            self.cache_dir = None


class IAMSyntheticParagraphs:
    """Paragraphs made by stacking real line crops vertically, with small random spacing and indent.

    Sample ``i`` is a pure function of ``(seed, i)``: a uint8 ``[H, W]`` image and the lines' texts joined
    by ``\\n``.
    """

    def __init__(
        self, line_source: Source, size: int, seed: int = 0, lines_range: tuple[int, int] = (3, 12)
    ) -> None:
        if len(line_source) == 0:
            raise ValueError("line_source is empty")
        if not 1 <= lines_range[0] <= lines_range[1]:
            raise ValueError(f"lines_range must be (low, high) with 1 <= low <= high, got {lines_range}")
        self.lines, self.size, self.seed, self.lines_range = line_source, size, seed, lines_range

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} paragraphs")
        index %= self.size
        rng = np.random.default_rng((self.seed, index))
        n = int(rng.integers(self.lines_range[0], self.lines_range[1] + 1))
        picks = rng.choice(len(self.lines), size=n, replace=n > len(self.lines))
        samples = [self.lines[int(i)] for i in picks]
        line_h = int(np.median([s.image.shape[0] for s in samples]))
        gaps = rng.integers(0, max(1, line_h // 4) + 1, size=n)
        gaps[0] = 0
        indents = rng.integers(0, max(1, line_h // 2) + 1, size=n)
        height = int(sum(s.image.shape[0] for s in samples) + gaps.sum())
        width = int(max(s.image.shape[1] + ind for s, ind in zip(samples, indents, strict=True)))
        border = np.concatenate([np.r_[s.image[0], s.image[-1]] for s in samples])
        canvas = np.full((height, width), int(np.median(border)), dtype=np.uint8)
        y = 0
        for s, gap, ind in zip(samples, gaps, indents, strict=True):
            y += int(gap)
            h, w = s.image.shape
            canvas[y : y + h, int(ind) : int(ind) + w] = s.image
            y += h
        return Sample(image=canvas, text="\n".join(s.text for s in samples))

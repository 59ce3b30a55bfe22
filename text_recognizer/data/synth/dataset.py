"""Synthetic handwriting as a :class:`~text_recognizer.data.base.Source`: lines or paragraphs on demand."""

from __future__ import annotations

import numpy as np

from text_recognizer.data.base import Sample, Source
from text_recognizer.data.synth.corpus import SPLITS, load_corpus
from text_recognizer.data.synth.render import Page, RenderConfig, render_line, render_page, restyle_line
from text_recognizer.images import INK_THRESHOLD, find_lines, line_ink, normalize_ink

#: ``page_line``: one line as the predictor cuts it from a page (:func:`cut_page_line`)
KINDS: tuple[str, ...] = ("line", "paragraph", "page_line")
#: lines of the small page a ``page_line`` is cut from: the middle one has a neighbour above and below
PAGE_LINE_PAGE_LINES = 3
#: a found line is a clean cut of a true line when at least this share of the labelled ink in its band is
#: that line's, and at least this share of that line's ink is in the band
CLEAN_CUT = 0.9
#: Large enough that line and paragraph generators (and splits) never share a random stream.
_KIND_OFFSET = 1000


class SynthSource:
    """``size`` synthetic samples of one kind and split, rendered when indexed.

    Sample ``i`` depends only on ``(seed, split, kind, i)``: the generator is seeded with that tuple, so any
    worker process renders the same image for the same index. Fonts and corpus are loaded lazily, once per
    process, which makes the object cheap to pickle into DataLoader workers.

    Args:
        kind: ``"line"`` (one line of 30-60 characters), ``"paragraph"`` (3-12 lines joined by ``\\n``) or
            ``"page_line"`` (one line cut from a small page by the predictor's line finder,
            :func:`cut_page_line`).
        split: ``"train"``, ``"val"`` or ``"test"``; the splits draw from disjoint documents.
        size: number of samples (``len``).
        seed: base seed.
        config: renderer knobs.
    """

    def __init__(
        self,
        kind: str = "line",
        split: str = "train",
        size: int = 10000,
        seed: int = 0,
        config: RenderConfig | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.kind, self.split, self.size, self.seed = kind, split, size, seed
        self.config = config or RenderConfig()
        self._stream = SPLITS.index(split) + _KIND_OFFSET * KINDS.index(kind)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        """Sample ``index``: uint8 ``[H, W]`` image and its text."""
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} samples")
        index %= self.size
        rng = np.random.default_rng([self.seed, self._stream, index])
        corpus = load_corpus(self.split)
        if self.kind == "line":
            text = corpus.sample_line(rng)
            return Sample(image=render_line(text, rng, self.config), text=text)
        if self.kind == "page_line":
            page = render_page(corpus.sample_paragraph(rng, PAGE_LINE_PAGE_LINES), rng, self.config)
            cut = cut_page_line(page, rng)
            if cut is not None:
                return cut
            text = page.text.split("\n")[len(page.boxes) // 2]  # no clean cut: that line on its own
            return Sample(image=render_line(text, rng, self.config), text=text)
        page = render_page(corpus.sample_paragraph(rng), rng, self.config)
        return Sample(image=page.image, text=page.text, lines=page.boxes)


def cut_page_line(page: Page, rng: np.random.Generator) -> Sample | None:
    """One line of a rendered page as the predictor reads it: the page's ink normalised
    (:func:`~text_recognizer.images.normalize_ink`), its lines found
    (:func:`~text_recognizer.images.find_lines`) and one of the found lines that is a clean cut of one true
    line (:data:`CLEAN_CUT`, by the renderer's :attr:`~.render.Page.line_map`) chosen at random, cut as
    :func:`~text_recognizer.images.line_ink` does (deskewed, the neighbours' strokes outside its band
    blanked). Whole line images never show those cuts.

    Returns:
        the line's ink as uint8 ``[h, w]`` (bright on dark) with its text, or None (no clean cut).
    """
    ink = normalize_ink(page.image)
    truth = page.line_map.astype(np.float32)
    texts = page.text.split("\n")
    inked = ink > INK_THRESHOLD
    totals = np.bincount(page.line_map[inked], minlength=256)
    clean = []
    for line in find_lines(ink):
        crop = line_ink(ink, line)
        labels = line_ink(truth, line)[crop > INK_THRESHOLD].astype(np.int64)
        counts = np.bincount(labels[labels > 0], minlength=256)
        k = int(counts.argmax())
        one_line = counts[k] >= CLEAN_CUT * max(counts.sum(), 1)
        if 1 <= k <= len(texts) and one_line and counts[k] >= CLEAN_CUT * totals[k]:
            clean.append((crop, texts[k - 1]))
    if not clean:
        return None
    crop, text = clean[int(rng.integers(len(clean)))]
    return Sample(image=np.asarray(np.rint(crop * 255.0), np.uint8), text=text)


class Restyled:
    """A few real lines, each drawn afresh: ``variants`` versions of every line of ``source``.

    Index ``i`` is line ``i % len(source)``, restyled (:func:`~.render.restyle_line`) with probability
    ``share`` by a generator seeded with ``(seed, i)`` (else as it is), so that a mixture drawing indices at
    random sees a new version of a line nearly every time.
    """

    def __init__(self, source: Source, share: float, seed: int = 0, variants: int = 1000) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"restyle share must be in [0, 1], got {share}")
        self.source, self.share, self.seed, self.variants = source, share, seed, variants

    def __len__(self) -> int:
        return len(self.source) * self.variants

    def __getitem__(self, index: int) -> Sample:
        sample = self.source[index % len(self.source)]
        rng = np.random.default_rng([self.seed, index])
        if rng.random() >= self.share:
            return sample
        return Sample(image=restyle_line(sample.image, rng), text=sample.text)

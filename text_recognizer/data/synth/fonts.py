"""The fetched handwriting fonts: listing them and loading them at a given size (cached per process)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import ImageFont

from text_recognizer.data.synth.assets import LICENSES_FILE, MIN_FAMILIES, FontRecord, MissingAssetsError
from text_recognizer.images import ink_bbox
from text_recognizer.paths import fonts_dir

#: Handwriting that no training run may see: the writers of ``benchmarks.personalise`` (a new user the shipped
#: model never read). ``dkg-handwriting`` is Daniel Kahn Gillmor's hand, Debian's ``fonts-dkg-handwriting``
#: (not in the npm catalogue that ``data fetch`` reads); listed here so that it stays out should it ever be.
HOLDOUT_FAMILIES: tuple[str, ...] = ("dkg-handwriting",)


@dataclass(frozen=True)
class FontSpec:
    """One font file of a family.

    Attributes:
        family: npm family name, e.g. ``"indie-flower"``.
        path: the TTF file.
        x_height: height of a lowercase ``x`` in pixels per pixel of font size (0.2 to 0.6 for these fonts).
        stroke: median stroke width in x-heights.
        joined: whether the font joins its letters (cursive).

    All three were measured by the font rule (:mod:`~text_recognizer.data.synth.font_quality`) at fetch time.
    """

    family: str
    path: Path
    x_height: float
    stroke: float
    joined: bool


def _records() -> list[FontRecord]:
    index = fonts_dir() / LICENSES_FILE
    if not index.exists():
        raise MissingAssetsError(f"No handwriting fonts found in {fonts_dir()}")
    try:
        records = [FontRecord(**r) for r in json.loads(index.read_text())]
    except (ValueError, TypeError) as e:
        raise MissingAssetsError(f"The font index {index} was written by an older version ({e})") from e
    present = [r for r in records if (fonts_dir() / r.file).exists() and r.family not in HOLDOUT_FAMILIES]
    if len({r.family for r in present}) < MIN_FAMILIES:
        raise MissingAssetsError(
            f"Only {len({r.family for r in present})} font families in {fonts_dir()} (need {MIN_FAMILIES})"
        )
    return present


def list_font_families() -> list[str]:
    """Names of the available handwriting font families, sorted.

    Raises:
        MissingAssetsError: the fonts were not fetched (the message says how to fetch them).
    """
    return sorted({r.family for r in _records()})


@lru_cache(maxsize=1)
def list_fonts() -> tuple[FontSpec, ...]:
    """Every available font file with what the font rule measured (read once per process)."""
    return tuple(
        FontSpec(
            family=r.family, path=fonts_dir() / r.file, x_height=r.x_height, stroke=r.stroke, joined=r.joined
        )
        for r in _records()
    )


@lru_cache(maxsize=2048)
def load_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """A PIL font at ``size`` pixels, cached per ``(path, size)`` in this process."""
    return ImageFont.truetype(str(path), size)


@dataclass(frozen=True)
class Glyph:
    """One rasterised character.

    Attributes:
        mask: uint8 ``[h, w]`` coverage (255 = ink); may be ``[0, 0]`` for a space.
        left: x of the mask's left edge relative to the pen position.
        top: y of the mask's top edge relative to the baseline (negative above it).
        advance: pen advance in pixels.
    """

    mask: np.ndarray
    left: int
    top: int
    advance: float


#: Supersampling factor of fine-pen glyphs: a fine pen's width is set in steps of 1/3 px.
THIN_SUPERSAMPLE = 3


def _peel_tables() -> tuple[np.ndarray, np.ndarray]:
    """Zhang and Suen's two peeling rules as tables over the 256 codes of a pixel's 8 neighbours.

    Bit i of a code is the neighbour p(i+2) of the paper: clockwise from north, p2 (N), p3 (NE), p4 (E),
    p5 (SE), p6 (S), p7 (SW), p8 (W), p9 (NW). A pixel is peeled when it has 2 to 6 ink neighbours, exactly
    one 0 -> 1 transition around them, and the sub-iteration's side condition holds.
    """
    code = np.arange(256)
    p = [(code >> i) & 1 for i in range(8)]  # p[0] = p2 ... p[7] = p9
    count = np.sum(p, axis=0)
    transitions = np.sum([(p[i] == 0) & (p[(i + 1) % 8] == 1) for i in range(8)], axis=0)
    base = (count >= 2) & (count <= 6) & (transitions == 1)
    p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
    first = base & ((p2 & p4 & p6) == 0) & ((p4 & p6 & p8) == 0)
    second = base & ((p2 & p4 & p8) == 0) & ((p2 & p6 & p8) == 0)
    return first, second


_PEEL = _peel_tables()
#: weight 2**i at the place of neighbour p(i+2): N, NE, E, SE, S, SW, W, NW
_NEIGHBOUR_BITS = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], np.float32)


def skeleton(ink: np.ndarray) -> np.ndarray:
    """The centre lines of boolean ``[H, W]`` strokes, one pixel wide and still connected: bool ``[H, W]``.

    Zhang and Suen's thinning ("A fast parallel algorithm for thinning digital patterns", 1984): two
    sub-iterations peel boundary pixels whose removal keeps the stroke connected, until none is left to peel.
    Costs about one iteration per pixel of half the stroke width.
    """
    im = ink.astype(np.uint8)
    while True:
        changed = False
        for table in _PEEL:
            # each pixel's neighbour code in one correlation (bit weights at the neighbours' places)
            code = cv2.filter2D(im, cv2.CV_16S, _NEIGHBOUR_BITS, borderType=cv2.BORDER_CONSTANT)
            peel = (im == 1) & table[code]
            if peel.any():
                im[peel] = 0
                changed = True
        if not changed:
            return im.astype(bool)


@lru_cache(maxsize=200_000)
def glyph(path: Path, size: int, char: str, thin: int = 0) -> Glyph:
    """``char`` of the font at ``path`` rasterised at ``size`` pixels, cached per process.

    ``thin > 0`` draws it with a fine, even pen (a ballpoint): the glyph is rasterised at ``THIN_SUPERSAMPLE``
    times the size, reduced to its centre lines (:func:`skeleton`), drawn again along them with a round pen
    ``thin`` pixels wide at that size (``thin / THIN_SUPERSAMPLE`` px at the final size) and scaled back down.
    The letter keeps its shape and size; thick and hairline strokes alike come out one width.

    Rasterising with FreeType costs tens of microseconds a glyph; composing lines from cached glyphs is what
    makes the renderer fast.
    """
    font = load_font(path, size)
    advance = float(font.getlength(char))
    if char.isspace():
        return Glyph(np.zeros((0, 0), np.uint8), 0, 0, advance)
    if thin <= 0:
        im, (left, top) = font.getmask2(char, mode="L", anchor="ls")
        mask = np.asarray(im, dtype=np.uint8).reshape(im.size[1], im.size[0])
        return Glyph(mask, int(left), int(top), advance)
    s = THIN_SUPERSAMPLE
    big = glyph(path, size * s, char)
    pad = s + thin
    centre = skeleton(np.pad(big.mask, pad) > 127).astype(np.uint8) * 255
    redrawn = cv2.dilate(centre, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thin, thin)))
    # align the supersampled grid so that the origin stays on a pixel corner
    left0, top0 = big.left - pad, big.top - pad
    ox, oy = left0 % s, top0 % s
    m2 = np.pad(redrawn, ((oy, (-(redrawn.shape[0] + oy)) % s), (ox, (-(redrawn.shape[1] + ox)) % s)))
    h, w = m2.shape[0] // s, m2.shape[1] // s
    small = cv2.resize(m2, (w, h), interpolation=cv2.INTER_AREA)
    # INTER_AREA averages coverage; thin strokes come out grey, so restore their darkness
    small = np.clip(small.astype(np.float32) * 1.6, 0, 255).astype(np.uint8)
    box = ink_bbox(small, threshold=0)
    if box is None:
        return Glyph(np.zeros((0, 0), np.uint8), 0, 0, advance)
    top, bottom, left, right = box
    small = small[top:bottom, left:right]  # the pad's blank margin off
    return Glyph(small, (left0 - ox) // s + left, (top0 - oy) // s + top, advance)

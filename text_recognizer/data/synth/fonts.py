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


#: Supersampling factor of thinned glyphs: eroding at 3x size thins a stroke by 2/3 px a step.
THIN_SUPERSAMPLE = 3
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)  # cv2.MORPH_CROSS, 3 x 3


@lru_cache(maxsize=200_000)
def glyph(path: Path, size: int, char: str, thin: int = 0) -> Glyph:
    """``char`` of the font at ``path`` rasterised at ``size`` pixels, cached per process.

    ``thin > 0`` draws it with a finer pen: the glyph is rasterised at ``THIN_SUPERSAMPLE`` times the size,
    eroded ``thin`` times with a 3 x 3 cross (each step takes 2/3 px off the stroke width at the final size)
    and scaled back down, so the letter keeps its shape and size with thinner strokes.

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
    pad = s
    m = np.pad(big.mask, pad)
    thinned = cv2.erode(m, _CROSS, iterations=thin)
    if thinned.max() < 128:  # eroded away: keep the finest stroke that survives
        thinned = cv2.erode(m, _CROSS, iterations=1)
    # align the supersampled grid so that the origin stays on a pixel corner
    left0, top0 = big.left - pad, big.top - pad
    ox, oy = left0 % s, top0 % s
    m2 = np.pad(thinned, ((oy, (-(thinned.shape[0] + oy)) % s), (ox, (-(thinned.shape[1] + ox)) % s)))
    h, w = m2.shape[0] // s, m2.shape[1] // s
    small = cv2.resize(m2, (w, h), interpolation=cv2.INTER_AREA)
    # INTER_AREA averages coverage; thin strokes come out grey, so restore their darkness
    small = np.clip(small.astype(np.float32) * 1.6, 0, 255).astype(np.uint8)
    return Glyph(small, (left0 - ox) // s, (top0 - oy) // s, advance)

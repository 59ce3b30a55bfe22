"""The automatic rule that decides whether a font can stand in for a handwriting writer.

A font is kept only if all of these hold (measured on its rasterised glyphs, nothing by hand):

1. **Printable ASCII covered**: every character of the vocabulary but the newline has a glyph.
2. **Letter case kept**: lowercase letters are not capitals drawn small (small caps, unicase, "all caps"
   display scripts), or the labels' case would be wrong. Measured on the letters whose two cases differ in
   shape (``a b d e g h n q r t``): at a common size the lowercase and uppercase bitmaps must not look alike
   (median correlation at most ``MAX_CASE_CORRELATION``), the x-height must be below ``MAX_X_TO_CAP`` of
   the cap height, and the ascenders (``b d h k l``) must rise at least ``MIN_ASCENDER_TO_X`` times the
   x-height (small capitals have none).
3. **Legible at small size**: rendered at an x-height of ``SMALL_X_HEIGHT`` pixels (the size of a 32 px
   training line), strokes are solid (at least ``MIN_SOLID_SHARE`` of the inked pixels are more than half
   covered: hairline scripts turn to grey smudges), counters stay open (ink covers at most
   ``MAX_X_BOX_INK`` of the x-height letters' boxes: marker fonts fill them), the lowercase letters stay
   distinct (at most ``MAX_LOOKALIKE_PAIRS`` pairs of different letters correlate above 0.9), and flourishes
   stay near the line (the text's ink spans at most ``MAX_EXTENT_X_HEIGHTS`` x-heights top to bottom).

Each measure also yields a style descriptor used to sample writers: the stroke width relative to the
x-height and whether the font joins its letters (cursive).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import ImageFont

from text_recognizer.vocab import CHARACTERS

REQUIRED_CHARS = CHARACTERS.replace("\n", "").replace(" ", "")
CASE_LETTERS = "abdeghnqrt"
X_LETTERS = "xacemnorsuvwz"
CAP_LETTERS = "HIEFLTNXZ"
ASCENDER_LETTERS = "bdhkl"
MIN_ASCENDER_TO_X = 1.25
MAX_CASE_CORRELATION = 0.7
MAX_X_TO_CAP = 0.9
SMALL_X_HEIGHT = 10
MIN_SOLID_SHARE = 0.3
MAX_X_BOX_INK = 0.6
MAX_LOOKALIKE_PAIRS = 4
MAX_EXTENT_X_HEIGHTS = 4.5
#: A font whose sample word has at most this many ink components per letter is "joined" (cursive).
JOINED_COMPONENTS_PER_LETTER = 0.45
_PROBE = 100
_SAMPLE_TEXT = "The quick brown fox jumps over the lazy dog"
_JOIN_WORD = "minimum"  # letters that join in a cursive hand: few ink components if the font joins


@dataclass(frozen=True)
class FontQuality:
    """What the rule measured on one font file.

    Attributes:
        reason: why the font is rejected, or None if it is kept.
        x_height: x-height in pixels per pixel of font size.
        stroke: median stroke width in x-heights (0.08 for a fine pen, 0.25 for a marker).
        joined: whether the font joins its letters (cursive).
    """

    reason: str | None
    x_height: float
    stroke: float
    joined: bool


def _mask(font: ImageFont.FreeTypeFont, text: str) -> np.ndarray:
    """float32 ``[h, w]`` coverage of ``text`` in ``[0, 1]``, cropped to its ink (``[0, 0]`` when blank)."""
    im, _ = font.getmask2(text, mode="L", anchor="ls")
    m = np.asarray(im, dtype=np.float32).reshape(im.size[1], im.size[0]) / 255.0
    rows, cols = np.flatnonzero(m.max(1) > 0.1), np.flatnonzero(m.max(0) > 0.1)
    if rows.size == 0:
        return np.zeros((0, 0), np.float32)
    return m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _norm_bitmap(m: np.ndarray, size: int = 24) -> np.ndarray:
    """A glyph resized to ``[size, size]`` and standardised (zero mean, unit norm) for correlation."""
    if m.size == 0:
        return np.zeros(size * size, np.float32)
    r = cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA).ravel()
    r = r - r.mean()
    n = float(np.linalg.norm(r))
    return r / n if n > 0 else r


def _height(font: ImageFont.FreeTypeFont, letters: str) -> float:
    return float(np.median([max(1, -font.getbbox(c, anchor="ls")[1]) for c in letters]))


def _stroke_width(m: np.ndarray) -> float:
    """Median stroke width in pixels of coverage ``m``: twice the distance-transform value on the ridge."""
    ink = (m > 0.5).astype(np.uint8)
    if ink.sum() == 0:
        return 0.0
    dist = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
    ridge = (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8))) & (ink > 0)
    return float(2.0 * np.median(dist[ridge])) if ridge.any() else 0.0


def assess_font(font_bytes: bytes) -> FontQuality:
    """Measure a TTF/OTF against the rule above."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(io.BytesIO(font_bytes), lazy=True).getBestCmap() or {}
    missing = [c for c in REQUIRED_CHARS if ord(c) not in cmap]
    big = ImageFont.truetype(io.BytesIO(font_bytes), _PROBE)
    x_h = _height(big, X_LETTERS)
    cap_h = _height(big, CAP_LETTERS)
    x_height = x_h / _PROBE
    sample = _mask(big, _SAMPLE_TEXT)
    stroke = _stroke_width(sample) / max(x_h, 1.0)
    join = _mask(big, _JOIN_WORD)
    n_components = cv2.connectedComponents((join > 0.3).astype(np.uint8))[0] - 1 if join.size else 0
    joined = n_components <= JOINED_COMPONENTS_PER_LETTER * len(_JOIN_WORD)

    def result(reason: str | None) -> FontQuality:
        return FontQuality(reason=reason, x_height=x_height, stroke=stroke, joined=joined)

    if missing:
        return result(f"does not cover printable ASCII (no {''.join(missing[:8])!r})")
    corr = [float(_norm_bitmap(_mask(big, lo)) @ _norm_bitmap(_mask(big, lo.upper()))) for lo in CASE_LETTERS]
    asc_h = _height(big, ASCENDER_LETTERS)
    if (
        x_h > MAX_X_TO_CAP * cap_h
        or float(np.median(corr)) > MAX_CASE_CORRELATION
        or asc_h < MIN_ASCENDER_TO_X * x_h
    ):
        return result(
            f"letter case not kept (x-height/cap height {x_h / cap_h:.2f}, ascenders/x-height "
            f"{asc_h / x_h:.2f}, lower/upper shape correlation {np.median(corr):.2f})"
        )
    size = max(4, round(SMALL_X_HEIGHT / max(x_height, 1e-3)))
    small = ImageFont.truetype(io.BytesIO(font_bytes), size)
    text = _mask(small, _SAMPLE_TEXT)
    if text.size == 0:
        return result("draws no ink at small size")
    inked = text > 0.1
    solid = float((text > 0.5).sum() / max(1, inked.sum()))
    if solid < MIN_SOLID_SHARE:
        return result(f"hairline strokes at small size ({solid:.2f} of inked pixels solid)")
    x_ink = [_mask(small, c) for c in X_LETTERS]
    box_ink = float(np.median([m.mean() for m in x_ink if m.size]))
    if box_ink > MAX_X_BOX_INK:
        return result(f"counters fill in at small size (ink {box_ink:.2f} of the letter boxes)")
    letters = [_norm_bitmap(_mask(small, c), 12) for c in "abcdefghijklmnopqrstuvwxyz"]
    sims = np.array(letters) @ np.array(letters).T
    lookalikes = int((np.triu(sims, 1) > 0.9).sum())
    if lookalikes > MAX_LOOKALIKE_PAIRS:
        return result(f"{lookalikes} pairs of lowercase letters look alike at small size")
    extent = text.shape[0] / SMALL_X_HEIGHT
    if extent > MAX_EXTENT_X_HEIGHTS:
        return result(f"flourishes span {extent:.1f} x-heights")
    return result(None)

"""Image loading and normalising, shared by training and inference (numpy and Pillow only).

Every image the model sees goes through the same steps, whether it was rendered by the synthetic engine,
read from IAM, or uploaded by a user:

1. :func:`load_gray` decodes any file (EXIF rotation, RGBA over white, any mode) to 8-bit grayscale.
2. :func:`normalize_ink` makes ink bright on a dark, flat background in ``[0, 1]`` whatever the polarity,
   lighting or paper.
3. :func:`segment_lines` cuts a paragraph into line bands; :func:`prepare_line` crops one line to its ink and
   resizes it to the model's input height.
"""

from __future__ import annotations

import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: The one pixel limit (width x height), checked from the header before any decoding (:func:`pixel_error`);
#: Pillow's own global bomb limit is left as it is for other importers.
MAX_PIXELS = 40_000_000
#: Most elongated image read, either way (width : height or height : width). A line is read at the model's
#: input height and at most its ``max_width`` (32 x 512, 16 : 1): no handwriting the model can read has a
#: shape past 100 : 1, and such shapes (2 x 20,000,000 pixels) cost the most per pixel. Checked from the
#: header, like :data:`MAX_PIXELS` (:func:`shape_error`).
MAX_ASPECT = 100
#: Pixels a page is read at: a larger image is first reduced by a whole factor (box filter) to at most this
#: many, so line finding costs the same for any larger input (a 40 MP photo: 6 s CPU before, read at about
#: 1 s), and boxes are scaled back to the input's pixels. A phone photo of a page at 8 MP has lines about
#: 100 px high; the model reads them at 32.
WORK_PIXELS = 8_000_000
#: Most text lines read from one image: bounds the work of a page (one model pass per line), well above a
#: dense handwritten page (about 40 lines).
MAX_LINES = 100

INK_THRESHOLD = 0.3


class ImageError(ValueError):
    """An image that cannot be used, with the file (or source) named in the message."""


ImageSource = str | Path | bytes | Image.Image | np.ndarray


def pixel_error(width: int, height: int, max_pixels: int = MAX_PIXELS) -> str | None:
    """The refusal of a ``width`` x ``height`` image over ``max_pixels``, or None when it fits. One wording
    everywhere: ``"12000x12000 = 144000000 pixels exceeds the limit of 40000000"``."""
    if width * height <= max_pixels:
        return None
    return f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}"


def shape_error(width: int, height: int) -> str | None:
    """The refusal of an image more elongated than :data:`MAX_ASPECT` or under 2 px on a side, or None.
    One wording everywhere: ``"image is 2x20000000 pixels: more elongated than 100:1, ..."``."""
    if min(width, height) < 2:
        return f"image is {width}x{height} pixels; it needs at least 2x2"
    if max(width, height) > MAX_ASPECT * min(width, height):
        return (
            f"image is {width}x{height} pixels: more elongated than {MAX_ASPECT}:1, which no handwriting "
            "the model reads is; crop it to the text"
        )
    return None


def reduce_factor(width: int, height: int, work_pixels: int | None = None) -> int:
    """The whole factor that brings a ``width`` x ``height`` image to at most ``work_pixels`` (None:
    :data:`WORK_PIXELS`) pixels; 1: as it is."""
    work_pixels = WORK_PIXELS if work_pixels is None else work_pixels
    factor = 1
    while -(-width // factor) * -(-height // factor) > work_pixels:
        factor += 1
    return factor


def reduce_gray(gray: np.ndarray, factor: int) -> np.ndarray:
    """uint8 ``[H, W]`` -> ``[ceil(H / factor), ceil(W / factor)]``: the mean of each ``factor`` x ``factor``
    block (Pillow's ``reduce``: one pass, linear in the pixels)."""
    if factor == 1:
        return gray
    return np.asarray(Image.fromarray(gray).reduce(factor))


def load_gray(src: ImageSource, name: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``src`` to grayscale.

    Returns:
        uint8 array of shape ``[H, W]``.
    Raises:
        ImageError: the data is not a readable image, or has more than ``max_pixels`` pixels.
    """
    label = name or (str(src) if isinstance(src, str | Path) else "image")
    if isinstance(src, np.ndarray):
        arr = src
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            arr = np.asarray(Image.fromarray(arr.astype(np.uint8)).convert("L"))
        if arr.ndim != 2:
            raise ImageError(f"{label}: expected an [H, W] or [H, W, 3|4] array, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return arr
    try:
        if isinstance(src, Image.Image):
            img = src
        else:
            data = src if isinstance(src, bytes) else Path(src).read_bytes()
            img = Image.open(io.BytesIO(data))
        refused = pixel_error(img.width, img.height, max_pixels) or shape_error(img.width, img.height)
        if refused:
            raise ImageError(f"{label}: {refused}")
        img = ImageOps.exif_transpose(img) or img
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(img, dtype=np.float32)
            a = (a - a.min()) / max(float(a.max() - a.min()), 1.0) * 255
            return a.astype(np.uint8)
        gray = np.asarray(img.convert("L"))
    except ImageError:
        raise
    except FileNotFoundError as e:
        raise ImageError(f"{label}: file not found") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{label}: not a readable image (not PNG, JPEG, GIF, BMP, TIFF or WebP data)") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{label}: not a readable image ({type(e).__name__}: {e})") from e
    if gray.size == 0 or min(gray.shape) < 2:
        raise ImageError(f"{label}: image is empty ({gray.shape[1]}x{gray.shape[0]})")
    return gray


def _resize_float(a: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a float32 ``[H, W]`` array to ``[height, width]``."""
    img = Image.fromarray(a.astype(np.float32), mode="F")
    return np.asarray(
        img.resize((max(1, width), max(1, height)), Image.Resampling.BILINEAR), dtype=np.float32
    )


def _background(g: np.ndarray) -> np.ndarray:
    """Smooth estimate of the (dark) background of an ink-bright image ``[H, W]`` -> ``[H, W]``."""
    h, w = g.shape
    # blocks small enough to follow a lighting gradient across a line, large enough to be mostly paper
    block = max(8, min(min(h, w) // 3, max(h, w) // 12))
    bh, bw = max(1, h // block), max(1, w // block)
    small = g[: bh * block, : bw * block]
    if small.size == 0:
        return np.full_like(g, float(np.median(g)))
    grid = small.reshape(bh, small.shape[0] // bh, bw, small.shape[1] // bw)
    # every other pixel of each block is plenty to find its background level
    blocks = grid[:, ::2, :, ::2].transpose(0, 2, 1, 3).reshape(bh, bw, -1)
    # the background is the majority of each block: a low-middle percentile ignores ink strokes
    k = int(0.4 * (blocks.shape[2] - 1))
    est = np.partition(blocks, k, axis=2)[:, :, k].astype(np.float32)
    return _resize_float(est, w, h)


#: Percentile of a row's pixels taken as what the background estimate left in that row (:func:`_row_floor`).
ROW_FLOOR_PERCENTILE = 25


def _row_floor(ink: np.ndarray) -> np.ndarray:
    """What the block background of :func:`_background` leaves in each row of ``[H, W]`` (no value below 0)
    -> ``[H]``: the :data:`ROW_FLOOR_PERCENTILE` of the row (read at 512 to 1,023 of its columns on a wider
    image; ink covers less than that of any row of writing). The shading of a photo's edge falls over a few
    rows, more steeply than blocks can follow, and was left as a band of "ink" that the line finder read as a
    line. A row with more zeros than that percentile's rank has 0 there: only the others are partitioned
    (about a fifth of the rows of a line image)."""
    sample = ink[:, :: max(1, ink.shape[1] // 512)]
    k = int(ROW_FLOOR_PERCENTILE / 100 * (sample.shape[1] - 1))
    floor = np.zeros(sample.shape[0], np.float32)
    lit = np.count_nonzero(sample, axis=1) >= sample.shape[1] - k  # at most k zeros
    floor[lit] = np.partition(sample[lit], k, axis=1)[:, k]
    return floor


def _subsample(a: np.ndarray, n: int = 40_000) -> np.ndarray:
    """A regular grid of about ``n`` pixels of ``[H, W]``: cheap statistics of big images."""
    step = max(1, int(np.sqrt(a.size / n)))
    return a[::step, ::step]


def _percentile(a: np.ndarray, q: float) -> float:
    """``float(np.percentile(a, q))`` of a float32 array (linear interpolation), bit for bit: numpy
    partitions a copy at four ranks (first, last and the two around the quantile) behind a general
    machinery; the two ranks alone take 376 against 627 us on a line's normalised pixels (45 % background)
    and 104 against 193 us on a page's line crops (two thirds background)."""
    flat = a.ravel()
    n = flat.size
    if n == 0 or flat.dtype != np.float32:
        return float(np.percentile(flat, q))
    q = q / 100
    virtual = n * q + (1 + q * (1 - 1 - 1)) - 1  # numpy's virtual index for the linear method
    if virtual >= n - 1:
        return float(flat.max())
    lo = math.floor(virtual)
    part = np.partition(flat, [lo, lo + 1])
    below, above = part[lo], part[lo + 1]
    g = virtual - lo
    diff = above - below  # float32 scalars and a Python weight, as numpy's _lerp computes them
    return float(below + diff * g if g < 0.5 else above - diff * (1 - g))


def normalize_ink(gray: np.ndarray) -> np.ndarray:
    """Make ink bright on a flat dark background.

    Args:
        gray: uint8 ``[H, W]`` in either polarity, possibly unevenly lit.
    Returns:
        float32 ``[H, W]`` in ``[0, 1]``: 0 is background, 1 is the strongest ink.
    """
    g = gray.astype(np.float32) / 255.0
    if _dark_ink(g):
        g = 1.0 - g
    ink = g - _background(g)
    np.maximum(ink, 0.0, out=ink)
    ink -= _row_floor(ink)[:, None]
    np.maximum(ink, 0.0, out=ink)
    scale = _percentile(_subsample(ink), 99.7)
    if scale < 0.05:  # nearly blank: keep what contrast there is without amplifying noise
        scale = max(float(ink.max()), 0.05)
    ink /= scale
    return np.minimum(ink, 1.0, out=ink)


#: Below this skewness (either sign) the local contrast of an image cannot tell its polarity
#: (:func:`_dark_ink`): its median decides.
POLARITY_SKEW = 0.25


def _dark_ink(g: np.ndarray) -> bool:
    """Whether ``[H, W]`` (float, 0-1) holds dark ink on light paper.

    Its contrast to the local mean (:func:`_contrast_skewness` of a subsample of at most 80,000 pixels:
    the 16 x 16 square around each of its pixels) has its long tail on the side of the ink (strokes are thin
    and few, paper is most of every square): negative skewness is dark ink. This holds under lighting
    gradients that pull the median of light paper below the middle of the image's range (a vignetted photo),
    where the median alone misjudged 2 of 200 synthetic test lines and 4 of 140 hard pages. Only when the
    skewness is within :data:`POLARITY_SKEW` of 0 (flat images, noise) does the median decide: most of the
    image light, dark ink."""
    skew = _contrast_skewness(_subsample(g, 80_000), 1)
    if skew is not None and abs(skew) >= POLARITY_SKEW:
        return skew < 0
    sample = _subsample(g)
    lo, hi = np.percentile(sample, (1, 99))
    return bool(np.median(sample) > 0.5 * (lo + hi))


def ink_bbox(ink: np.ndarray, threshold: float = INK_THRESHOLD) -> tuple[int, int, int, int] | None:
    """Bounding box ``(top, bottom, left, right)`` (exclusive ends) of ink in ``[H, W]``, or None."""
    mask = ink > threshold
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_window(ink: np.ndarray, margin: float = 0.08, pad: bool = False) -> tuple[np.ndarray, int, int]:
    """Crop ``[H, W]`` to its ink plus a margin (a fraction of the ink height) -> the crop and the columns
    ``[c0, c1)`` of ``ink`` it spans. With ``pad``, background (0) makes up the margin where the image ends
    closer to the ink than that (then ``c0 < 0`` or ``c1 > W``). No ink: ``ink`` itself, ``0, W``."""
    h, w = ink.shape
    box = ink_bbox(ink)
    if box is None:
        return ink, 0, w
    top, bottom, left, right = box
    m = max(1, round(margin * (bottom - top)))
    t, b, c0, c1 = top - m, bottom + m, left - m, right + m
    out = ink[max(0, t) : min(h, b), max(0, c0) : min(w, c1)]
    if not pad:
        return out, max(0, c0), min(w, c1)
    return np.pad(out, ((max(0, -t), max(0, b - h)), (max(0, -c0), max(0, c1 - w)))), c0, c1


def resize_to_height(ink: np.ndarray, height: int, max_width: int) -> np.ndarray:
    """Resize ``[h, w]`` to ``[height, w']`` keeping the aspect ratio, ``w'`` clipped to ``max_width``."""
    h, w = ink.shape
    new_w = int(np.clip(round(w * height / max(h, 1)), 8, max_width))
    return np.clip(_resize_float(ink, new_w, height), 0.0, 1.0)


#: Percentile of a line's normalised ink taken as its noise floor (:func:`drop_noise_floor`). Chosen on
#: synthetic validation (400 lines, 30 paragraphs: 50, 60, 65, 70 tried; 60 best on both), the shipped model
#: reads test lines 0.0668 -> 0.0656 (200) and 0.0645 -> 0.0601 (300), paragraphs 0.0970 -> 0.0885.
NOISE_FLOOR_PERCENTILE = 60


def drop_noise_floor(ink: np.ndarray) -> np.ndarray:
    """Normalised ink ``[H, W]`` with its noise floor taken out: float32 ``[H, W]`` in ``[0, 1]``, the
    :data:`NOISE_FLOOR_PERCENTILE` of its pixels (read on about 20,000 of them) subtracted and the rest
    stretched back to 1. Strokes cover well under half of a line's pixels, so on clean paper the floor is 0
    and nothing changes; on a noisy photo it is the level of the speckle that normalisation kept as faint ink
    all over the line."""
    t = _percentile(_subsample(ink, 20_000), NOISE_FLOOR_PERCENTILE)
    if t <= 0.0 or t >= 0.99:
        return ink
    return np.clip((ink - np.float32(t)) / np.float32(1.0 - t), 0.0, 1.0).astype(np.float32)


#: Least share of a line crop's height its core (the x-height band, :func:`core_rows`) is given: the lower
#: quartile of the synthetic training lines (median 0.31). Real writers with tall ascenders and deep
#: descenders (IAM a01-077: 0.19) otherwise reach the model with letters of 6 of its 32 rows. Chosen on
#: synthetic validation with the 2026-12-03 model (0.22 / 0.25 / 0.28 / 0.31 tried; off: lines 0.0560,
#: paragraphs 0.0748; 0.25: 0.0542, 0.0742).
CORE_MIN_SHARE = 0.25


def core_rows(ink: np.ndarray) -> tuple[int, int] | None:
    """The core of a line crop ``[H, W]`` (ink bright): rows ``[a, b)`` from the first to the last whose ink
    is at least half the fullest row's (the x-height band, where every letter has ink), or None (no ink)."""
    profile = ink.sum(axis=1)
    peak = float(profile.max()) if profile.size else 0.0
    if peak <= 0.0:
        return None
    on = np.flatnonzero(profile >= 0.5 * peak)
    return int(on[0]), int(on[-1]) + 1


def normalize_core(ink: np.ndarray, min_share: float = CORE_MIN_SHARE) -> np.ndarray:
    """A line crop ``[H, W]`` whose core (:func:`core_rows`) is under ``min_share`` of its height, with the
    rows above and below the core squeezed (each zone resized by one factor) so that the core is exactly
    ``min_share``: float32 ``[H', W]``, ``H' <= H``. Other crops come back as they are."""
    span = core_rows(ink)
    if span is None:
        return ink
    a, b = span
    h, w = ink.shape
    core, rest = b - a, h - (b - a)
    if rest <= 0 or core >= min_share * h:
        return ink
    k = core * (1.0 - min_share) / (min_share * rest)
    parts = [ink[:a], ink[a:b], ink[b:]]
    for i in (0, 2):
        if parts[i].shape[0]:
            parts[i] = _resize_float(parts[i], w, max(1, round(parts[i].shape[0] * k)))
    return np.concatenate(parts, axis=0).astype(np.float32)


def prepare_line(gray: np.ndarray, height: int, max_width: int, normalized: bool = False) -> np.ndarray:
    """One line image -> model input: :func:`prepare_line_span`'s line."""
    return prepare_line_span(gray, height, max_width, normalized)[0]


def prepare_line_span(
    gray: np.ndarray, height: int, max_width: int, normalized: bool = False, pad: bool = False
) -> tuple[np.ndarray, int, int]:
    """One line image -> model input: ink normalised (:func:`normalize_ink`), its noise floor dropped
    (:func:`drop_noise_floor`), cropped to the ink (with ``pad``, its margin made up with background where
    the image is tighter: :func:`crop_window`), its ascender and descender zones squeezed when its core is
    small (:func:`normalize_core`) and resized to ``height``.

    Args:
        gray: uint8 ``[H, W]`` (any polarity), or float ``[H, W]`` already normalised when ``normalized``.
    Returns:
        float32 ``[height, W']`` in ``[0, 1]``, ink bright, ``W' <= max_width``, and the columns ``[c0, c1)``
        of ``gray`` its width spans (beyond ``[0, W)`` where ``pad`` added a margin).
    """
    ink = drop_noise_floor(gray if normalized else normalize_ink(gray))
    crop, c0, c1 = crop_window(ink, pad=pad)
    return resize_to_height(normalize_core(crop), height, max_width), c0, c1


def image_stats(gray: np.ndarray) -> dict[str, Any]:
    """Width, height, mean brightness and ink polarity of a raw grayscale input ``[H, W]``, for drift
    monitoring (serving records it per request; staging stores the training reference)."""
    median = _median_u8(gray) if gray.dtype == np.uint8 else float(np.median(gray))
    return {
        "width": int(gray.shape[1]),
        "height": int(gray.shape[0]),
        "brightness": float(gray.mean()),
        "polarity": "dark_ink" if median > 127 else "light_ink",
    }


def _median_u8(gray: np.ndarray) -> float:
    """``np.median`` of a uint8 array, read from its histogram (the two middle values of the sorted pixels,
    averaged) instead of partitioning a copy: a third of the cost on a line image (90 vs 270 us)."""
    counts = np.bincount(gray.ravel(), minlength=256).cumsum()
    n = gray.size
    lo, hi = np.searchsorted(counts, [(n - 1) // 2, n // 2], side="right").tolist()
    return (lo + hi) / 2


@dataclass(frozen=True)
class LineBox:
    """A text line of a page: rows ``top:bottom`` and columns ``left:right`` (exclusive ends)."""

    top: int
    bottom: int
    left: int
    right: int

    def scaled(self, factor: int, shape: tuple[int, ...]) -> LineBox:
        """This box of an image reduced by ``factor`` (:func:`reduce_gray`), in the pixels of the image of
        ``shape`` ``(H, W)`` it was reduced from."""
        if factor == 1:
            return self
        h, w = shape[0], shape[1]
        return LineBox(
            self.top * factor, min(h, self.bottom * factor), self.left * factor, min(w, self.right * factor)
        )


def _smooth(p: np.ndarray, k: int) -> np.ndarray:
    """Moving average of ``[N]`` over ``k`` samples, centred like ``np.convolve(p, ones(k) / k, "same")``,
    by cumulative sums: linear in ``N`` whatever ``k``."""
    if k <= 1:
        return p
    after = (k - 1) // 2  # window: k - 1 - after samples before each one, ``after`` samples after it
    total = np.cumsum(p, dtype=np.float64)
    c = np.concatenate([np.zeros(k - after), total, np.full(after, total[-1] if total.size else 0.0)])
    n = p.shape[0]
    return ((c[k : k + n] - c[:n]) / k).astype(np.float32)


def _runs(on: np.ndarray) -> np.ndarray:
    """Runs of True in a bool ``[N]`` -> int ``[R, 2]`` of ``(start, end)`` (exclusive ends)."""
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def segment_lines(ink: np.ndarray, min_height: int = 4) -> list[LineBox]:
    """Cut a normalised page ``[H, W]`` (ink bright) into text lines by its horizontal ink profile.

    Each line's band runs from the profile minimum above its body to the minimum below, so ascenders and
    descenders stay with their line. One line in gives one box out. Cost is linear in the pixels.

    Raises:
        ImageError: more than :data:`MAX_LINES` lines.
    """
    mask = ink > INK_THRESHOLD
    h = mask.shape[0]
    profile = mask.sum(axis=1).astype(np.float32)
    if profile.max() == 0:
        return []
    rows = np.flatnonzero(profile > 0)
    first, last = int(rows[0]), int(rows[-1]) + 1
    smooth = _smooth(profile, max(3, h // 150))
    body = smooth > 0.25 * _percentile(smooth[first:last], 90)
    found = _runs(body)
    if len(found) > 4 * MAX_LINES:  # slivers merge below, but not this many: refuse before looping
        raise ImageError(f"image has about {len(found)} text lines; at most {MAX_LINES} are read")
    runs: list[list[int]] = found.tolist()
    if not runs:
        return [LineBox(first, last, *_columns(mask[first:last]))]
    heights = np.array([b - a for a, b in runs], dtype=np.float32)
    typical = float(np.median(heights))
    merged = _merge_runs(runs, typical)
    cuts = [first]
    for (_, b0), (a1, _) in itertools.pairwise(merged):
        cuts.append(b0 + int(np.argmin(smooth[b0:a1])) if a1 > b0 else b0)
    cuts.append(last)
    boxes = []
    for top, bottom in itertools.pairwise(cuts):
        if bottom - top < min_height or not mask[top:bottom].any():
            continue
        left, right = _columns(mask[top:bottom])
        boxes.append(LineBox(top, bottom, left, right))
    if len(boxes) > MAX_LINES:
        raise ImageError(f"image has {len(boxes)} text lines; at most {MAX_LINES} are read")
    return boxes


def _merge_runs(runs: list[list[int]], typical: float) -> list[list[int]]:
    """Merge row runs ``[start, end)`` split by a thin gap (dots, accents) and fold slivers into their
    nearest neighbour; ``typical`` is the usual run height."""
    merged: list[list[int]] = runs[:1]
    for a, b in runs[1:]:
        gap = a - merged[-1][1]
        if gap < 0.35 * typical or (b - a) < 0.3 * typical or (merged[-1][1] - merged[-1][0]) < 0.3 * typical:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return merged


def _columns(mask: np.ndarray) -> tuple[int, int]:
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, mask.shape[1])


#: Line finders :func:`page_lines` can use: ``paths`` (:func:`find_lines`: deskew and least-ink paths, the
#: default) and ``profile`` (:func:`segment_lines`, the horizontal ink profile). Measured with
#: ``benchmarks.segmentation`` (2026-12-02): on 140 synthetic hard pages paths finds 97.7 % of the lines to
#: profile's 49.4 % (merged 5 vs 119), on the plain synthetic paragraphs it reads at page CER 0.135 to 0.404;
#: on the two real paragraphs both find every line, and profile's rectangular crops read slightly better
#: there (0.185 / 0.209 vs 0.215 / 0.221)
SEGMENTERS = ("paths", "profile")


def line_boxes(ink: np.ndarray, segmenter: str = SEGMENTERS[0]) -> list[LineBox]:
    """The line boxes of a normalised page ``[H, W]`` (ink bright), top to bottom, by ``segmenter``.

    Raises:
        ValueError: an unknown ``segmenter``.
    """
    if segmenter not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {segmenter!r}; expected one of {', '.join(SEGMENTERS)}")
    return segment_lines(ink) if segmenter == "profile" else [ln.box for ln in find_lines(ink)]


class PageLines(NamedTuple):
    """The lines :func:`page_lines` reads, top to bottom."""

    #: each line's ink, in the pixels of the input
    boxes: list[LineBox]
    #: each line prepared for the model: float32 ``[height, w_i]``
    crops: list[np.ndarray]
    #: the input's columns ``[x0, x1)`` each crop's width spans (its margin included), for word boxes
    spans: list[tuple[float, float]]


def page_lines(gray: np.ndarray, height: int, max_width: int, segmenter: str = SEGMENTERS[0]) -> PageLines:
    """A page or a line (uint8 ``[H, W]``, any polarity) -> its line boxes (:func:`line_boxes`), top to
    bottom, in the pixels of ``gray``, and each line prepared for the model: what the predictor reads. A page
    over :data:`WORK_PIXELS` is read reduced (:func:`reduce_factor`).

    With ``paths`` each crop is the line's own ink, deskewed, neighbours' strokes masked out
    (:func:`line_ink`). The band of a lone line is tight around its ink: its crop gets the margin of
    background that whole line images have in training (``pad``, :func:`crop_window`); a page's lines are
    cut without one, as the page-cut training lines are (``synth_page_lines``)."""
    ink, factor = _page_ink(gray)
    if segmenter == "paths":
        lines = find_lines(ink)
        boxes = [ln.box for ln in lines]
        lone = len(lines) == 1
        prepared = [prepare_line_span(line_ink(ink, ln), height, max_width, True, pad=lone) for ln in lines]
    else:
        boxes = line_boxes(ink, segmenter)
        prepared = [
            prepare_line_span(ink[b.top : b.bottom, b.left : b.right], height, max_width, normalized=True)
            for b in boxes
        ]
    spans = [
        (float((b.left + c0) * factor), float((b.left + c1) * factor))
        for b, (_, c0, c1) in zip(boxes, prepared, strict=True)
    ]
    return PageLines([b.scaled(factor, gray.shape) for b in boxes], [p[0] for p in prepared], spans)


def page_boxes(gray: np.ndarray, segmenter: str = SEGMENTERS[0]) -> list[LineBox]:
    """The line boxes :func:`page_lines` finds in ``gray`` (uint8 ``[H, W]``), without preparing the crops:
    what the feedback export cuts again to pair corrected lines with predicted ones."""
    ink, factor = _page_ink(gray)
    return [b.scaled(factor, gray.shape) for b in line_boxes(ink, segmenter)]


def page_line_map(gray: np.ndarray, segmenter: str = SEGMENTERS[0]) -> np.ndarray:
    """Which found line each pixel of ``gray`` (uint8 ``[H, W]``) is read as part of: int32 ``[H, W]``, ``k``
    in the band of the ``k``-th line of :func:`page_lines` (1-based, top to bottom), 0 outside every band.
    With ``paths`` a band is what :func:`line_ink` cuts (the columns of the line's box, the rows between its
    two paths); with ``profile`` it is the box. What the segmentation benchmark compares with the renderer's
    ink of each line."""
    ink, factor = _page_ink(gray)
    h, w = ink.shape
    out = np.zeros((h, w), np.int32)
    if segmenter == "paths":
        for k, ln in enumerate(find_lines(ink), start=1):
            cols, src, inside = _band(h, ln)
            out[src[inside], np.broadcast_to(cols, src.shape)[inside]] = k
    else:
        for k, b in enumerate(line_boxes(ink, segmenter), start=1):
            out[b.top : b.bottom, b.left : b.right] = k
    if factor > 1:
        # the reduced image has ceil(H / factor) rows: spread back, it covers ``gray`` with rows to spare
        out = np.repeat(np.repeat(out, factor, axis=0), factor, axis=1)[: gray.shape[0], : gray.shape[1]]
    return out


def _page_ink(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """uint8 ``[H, W]`` -> its normalised ink at the reading size (float32 ``[H', W']``, :func:`reduce_gray`)
    and the reduction factor (1: as it is)."""
    factor = reduce_factor(gray.shape[1], gray.shape[0])
    return normalize_ink(reduce_gray(gray, factor)), factor


# ------------------------------------------------------------------------------ line finding on real pages

#: Skew angles searched by :func:`estimate_skew`, in degrees (phone photos of notes: a few degrees).
MAX_SKEW_DEG = 6.0
#: Below this many columns a page has no measurable skew.
_MIN_SKEW_WIDTH = 64
#: A band touching the top or bottom edge with less than this share of the typical line height is a
#: neighbour line cut by the edge: it is not read.
PARTIAL_LINE_SHARE = 0.6
#: A band anywhere shorter than this share of the typical line height is not a line (a rule, a smudge).
SLIVER_SHARE = 0.3
#: Ink away from a line's main body with less than this share of its ink is dust, left out of its box.
DUST_SHARE = 0.02


@dataclass(frozen=True)
class Line:
    """A found line: its box in the input image, and how to cut its ink out.

    ``skew`` is the slope (rows per column) of the page's lines; ``upper`` and ``lower`` are float32 ``[W]``
    the separating paths above and below the line in deskewed rows (row ``y`` of column ``x`` of the image
    is deskewed row ``y - skew * (x - centre)``).
    """

    box: LineBox
    skew: float
    centre: float
    upper: np.ndarray
    lower: np.ndarray


def _block_any(mask: np.ndarray, target: int = 250_000) -> tuple[np.ndarray, int]:
    """``[H, W]`` bool -> ``[H // s, W // s]`` (any pixel of each ``s x s`` block) with ``s`` such that about
    ``target`` blocks remain, and ``s``."""
    h, w = mask.shape
    s = max(1, int(np.ceil(np.sqrt(h * w / target))))
    if s == 1 or h < s or w < s:
        return mask, 1
    blocks = mask[: h // s * s, : w // s * s].reshape(h // s, s, w // s, s)
    return np.asarray(blocks.max(axis=(1, 3))), s


def estimate_skew(mask: np.ndarray, pixels: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Slope (rows per column, ``tan`` of the angle) of the text lines of a bool ink mask ``[H, W]``: the
    shear that makes the horizontal ink profile sharpest (sum of squares), searched over
    ``+-MAX_SKEW_DEG`` on a reduced copy, coarse then fine. ``pixels``: ``np.nonzero(mask)`` when the caller
    has it (read as it is when the mask is small enough not to be reduced)."""
    if mask.shape[1] < _MIN_SKEW_WIDTH:
        return 0.0
    small, s = _block_any(mask)
    ys, xs = pixels if pixels is not None and s == 1 else np.nonzero(small)
    if ys.size < 20:
        return 0.0
    if ys.size > 60_000:
        keep = np.linspace(0, ys.size - 1, 60_000).astype(np.int64)
        ys, xs = ys[keep], xs[keep]
    xc = xs.astype(np.float32) - small.shape[1] / 2
    pad = int(np.ceil(np.tan(np.deg2rad(MAX_SKEW_DEG)) * small.shape[1])) + 2
    coarse = np.tan(np.deg2rad(np.arange(-MAX_SKEW_DEG, MAX_SKEW_DEG + 1e-6, 0.5)))
    best = float(coarse[int(np.argmax(_shear_scores(ys, xc, coarse, pad)))])
    step = np.tan(np.deg2rad(0.5))
    fine = best + np.linspace(-step, step, 11)
    return float(fine[int(np.argmax(_shear_scores(ys, xc, fine, pad)))])


def _shear_scores(ys: np.ndarray, xc: np.ndarray, slopes: np.ndarray, pad: int) -> np.ndarray:
    """How sharp the row profile of ink at rows ``ys`` and centred columns ``xc`` (``[N]`` each) is when
    sheared by each of ``slopes`` ``[T]`` (rows per column): the sum of squares of its row counts, int64
    ``[T]``. Slopes share one histogram (each its own range of ``n`` rows) in groups of about 260,000
    sheared pixels: all 41 of the coarse search at once made temporaries too large for the cache on a page
    (6.6 -> 2.3 ms on a real page's 19,000 ink pixels, the same sums), one group each cost more calls on a
    line; ``pad`` keeps rows above 0."""
    out = []
    group = max(8, 2**18 // max(1, len(ys)))
    for i in range(0, len(slopes), group):
        part = slopes[i : i + group]
        rows = np.rint(ys - part[:, None] * xc).astype(np.int64) + pad
        n = int(rows.max()) + 1
        rows += np.arange(len(part))[:, None] * n
        profile = np.bincount(rows.ravel(), minlength=len(part) * n).reshape(len(part), n)
        out.append((profile * profile).sum(axis=1))
    return np.concatenate(out)


def _rule_rows(profile: np.ndarray, width: int) -> np.ndarray:
    """Ruled-paper lines of a deskewed row profile ``[H]`` -> bool ``[H]``: a peak at most 4 rows thick that
    covers more than a third of the ``width``, stands far above the rows 5-6 away on one side and a quarter of
    the width above the rows 5 away on both."""
    n = profile.shape[0]
    rule = np.zeros(n, bool)
    if n < 14:
        return rule
    p = profile
    around = np.minimum(np.maximum(np.roll(p, 5), np.roll(p, 6)), np.maximum(np.roll(p, -5), np.roll(p, -6)))
    # thin: the rule adds a quarter of the width to its rows over the rows 5 away on both sides (a line's
    # body, many rows thick, does not; yet in tight spacing a body does stand above the gap on one side)
    thin = p - np.maximum(np.roll(p, 5), np.roll(p, -5)) > width / 4
    rule = (p > width / 3) & (p > 3.0 * around + 1.0) & thin
    rule[:6] |= (p[:6] > width / 3) & thin[:6]
    rule[-6:] |= (p[-6:] > width / 3) & thin[-6:]
    return rule


def _long_runs(mask: np.ndarray, length: int) -> np.ndarray:
    """Pixels of bool ``[H, W]`` in horizontal runs of at least ``length`` (ruled-paper lines, table rules,
    the edge of a sheet): bool ``[H, W]``. Linear in the pixels."""
    h, w = mask.shape
    flat = np.zeros((h, w + 2), np.int8)
    flat[:, 1:-1] = mask
    edges = np.diff(flat.ravel())
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long = ends - starts >= length
    if not long.any():
        return np.zeros((h, w), bool)
    n = h * (w + 2) + 1
    marks = np.bincount(starts[long] + 1, minlength=n) - np.bincount(ends[long] + 1, minlength=n)
    return (np.cumsum(marks[:-1]) > 0).reshape(h, w + 2)[:, 1:-1]


def _deskewed_rows(ys: np.ndarray, xs: np.ndarray, skew: float, centre: float) -> np.ndarray:
    return np.rint(ys - skew * (xs - centre)).astype(np.int64)


def _bodies(profile: np.ndarray) -> tuple[list[list[int]], float]:
    """Line bodies of a (deskewed, smoothed) row profile ``[H]``: runs above a quarter of its 90th percentile,
    thin gaps closed and slivers folded into a neighbour (:func:`_merge_runs`). Returns the runs
    ``[start, end)`` and the typical run height."""
    rows = np.flatnonzero(profile > 0)
    body = profile > 0.25 * _percentile(profile[rows[0] : rows[-1] + 1], 90)
    found = _runs(body)
    if len(found) > 4 * MAX_LINES:
        raise ImageError(f"image has about {len(found)} text lines; at most {MAX_LINES} are read")
    runs: list[list[int]] = found.tolist()
    heights = np.array([b - a for a, b in runs], dtype=np.float32)
    typical = float(np.median(heights[heights >= 0.5 * heights.max()])) if len(runs) else 0.0
    return _merge_runs(runs, typical), typical


def _pitch(dy: np.ndarray, xs: np.ndarray, hd: int, strip: int) -> float | None:
    """Line pitch (rows from one line to the next) of deskewed ink, from the autocorrelation of the row
    profiles of vertical strips (summed: a wavy line shifts a strip's profile, not its period), or None when
    there is no repeat (one line)."""
    n_strips = int(xs.max()) // strip + 1
    hist = np.bincount((xs // strip) * hd + dy, minlength=n_strips * hd).reshape(n_strips, hd)
    hist = hist.astype(np.float32)
    hist -= hist.mean(axis=1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(2 * hd)))
    spectrum = np.fft.rfft(hist, n=size, axis=1)
    acf = np.fft.irfft((spectrum * np.conj(spectrum)).sum(axis=0), n=size)[: hd // 2]
    if acf.size < 8 or acf[0] <= 0:
        return None
    rising = np.flatnonzero(np.diff(acf[2:]) > 0)  # past the first minimum, the peaks of the repeat
    if rising.size == 0:
        return None
    first_min = int(rising[0]) + 2
    lag = first_min + int(np.argmax(acf[first_min:]))
    # a page of two or three tight lines repeats weakly (its strip profiles are a few rows long); a body
    # is still only cut when it is taller than ONE_BODY_LINES pitches (:func:`_split_tall`)
    if acf[lag] < 0.015 * acf[0]:
        return None
    # the first peak with at least 0.4 of the best prominence (how far it stands above the deepest dip
    # between it and a higher peak, on its higher side): not a multiple of the pitch, as the peaks of a repeat
    # can grow with the lag, nor a notch on a peak's flank. Peaks below 0 count: with few lines, unevenly
    # spaced, the mean taken out of each strip pulls the pitch's peak under 0 while every other line's
    # stands above it (a wavy page of 6 lines: -0.04 at its pitch 31 with prominence 0.067, +0.04 at 65
    # with 0.088, and was cut into 3 lines)
    a = acf[first_min:]
    peaks = np.flatnonzero((a[1:-1] >= a[:-2]) & (a[1:-1] > a[2:])) + 1
    if peaks.size == 0:
        return float(lag)
    prominence = np.zeros(peaks.size)
    for i, q in enumerate(peaks):
        left = peaks[:i][a[peaks[:i]] > a[q]]
        right = peaks[i + 1 :][a[peaks[i + 1 :]] > a[q]]
        lo = a[(int(left[-1]) if left.size else 0) : q + 1].min()
        hi = a[q : (int(right[0]) if right.size else a.size - 1) + 1].min()
        prominence[i] = a[q] - max(lo, hi)
    return float(first_min + peaks[int(np.flatnonzero(prominence >= 0.4 * prominence.max())[0])])


def _centres(profile: np.ndarray, pitch: float) -> list[int]:
    """Rows of the line bodies of a deskewed row profile ``[H]`` with line ``pitch``: its peaks (smoothed
    over a third of the pitch) at least 0.55 pitch apart, taller than 0.3 of the 90th percentile; near the
    top and bottom edges lower peaks count too (a line cut by the edge, judged later by its height)."""
    h = profile.shape[0]
    smooth = _smooth(profile, max(3, int(pitch / 3)))
    rows = np.flatnonzero(smooth > 0)
    level = _percentile(smooth[rows[0] : rows[-1] + 1], 90)
    peak = (smooth >= np.roll(smooth, 1)) & (smooth >= np.roll(smooth, -1)) & (smooth > 0.08 * level)
    candidates = np.flatnonzero(peak)
    edge = (candidates < rows[0] + pitch) | (candidates > rows[-1] - pitch)
    candidates = candidates[edge | (smooth[candidates] > 0.3 * level)]
    chosen: list[int] = []
    taken = np.zeros(h, bool)
    gap = max(1, int(0.55 * pitch))
    for c in candidates[np.argsort(-smooth[candidates], kind="stable")]:
        if not taken[c]:
            chosen.append(int(c))
            taken[max(0, c - gap) : c + gap + 1] = True
    return sorted(chosen)


#: A body taller than this many times the median body is lines merged (waves, tight spacing).
TALL_BODY = 1.8
#: A page's only body taller than this many line pitches holds several lines. Three lines span two pitches
#: and a body (about half a pitch): at 2.5 a skewed three-line page (90 rows, pitch 36) was read as one line;
#: at 2.2 it is cut, and none of 900 synthetic single lines is.
ONE_BODY_LINES = 2.2


def _split_tall(
    bodies: list[list[int]], typical: float, profile: np.ndarray, pitch: float | None
) -> tuple[list[list[int]], float]:
    """Bodies (runs ``[start, end)`` of the deskewed row profile ``[H]``) with those that hold several lines
    replaced by their lines' centres (:func:`_centres`, one-row runs), and the typical body height.

    With three bodies or more, most of them short (within :data:`TALL_BODY` of the lower quartile) and well
    apart (median height at most 0.75 of the median spacing of the middles of neighbouring short bodies, two
    pairs of them at least), the spacing checks the
    autocorrelation's ``pitch`` (a pitch under 0.6 of it is a stroke's period and is replaced by it), and only
    the tall bodies are cut at their centres; otherwise the whole page is cut at its centres when the pitch
    says the body holds several lines."""
    heights = np.array([b - a for a, b in bodies], dtype=np.float32)
    if len(bodies) >= 3:
        med = float(np.median(heights))
        normal = heights <= TALL_BODY * _percentile(heights, 25)
        mids = np.array([(a + b) / 2 for a, b in bodies], dtype=np.float32)
        pairs = normal[1:] & normal[:-1]
        spacing = float(np.median(np.diff(mids)[pairs])) if pairs.sum() >= 2 else 0.0
        if normal.sum() * 3 >= 2 * len(bodies) and med <= 0.75 * spacing:
            if pitch is None or pitch < 0.6 * spacing:
                pitch = spacing
            if normal.all() or pitch is None:
                return bodies, med
            centres = np.array(_centres(profile, pitch))
            out: list[list[int]] = []
            for (a, b), ok in zip(bodies, normal, strict=True):
                inside = centres[(centres >= a) & (centres < b)] if not ok else np.array([])
                out.extend([[int(c), int(c) + 1] for c in inside] if inside.size > 1 else [[a, b]])
            return out, min(med, 0.4 * pitch)
    # bodies further apart than two pitches: the autocorrelation found a stroke's period, not the lines'
    # (two lines of print), so each body is a line
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(bodies)]
    if pitch is not None and gaps and min(gaps) > 2 * pitch:
        return bodies, float(np.median(heights))
    # one body taller than :data:`ONE_BODY_LINES` pitches is lines merged by waves or tight spacing; one
    # shorter is a line
    if pitch is not None and (len(bodies) > 1 or heights[0] > ONE_BODY_LINES * pitch):
        return [[c, c + 1] for c in _centres(profile, pitch)], 0.4 * pitch
    return bodies, typical


def _separators(
    ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int], bodies: list[list[int]], strip: int
) -> list[np.ndarray]:
    """For each pair of neighbouring bodies, the path between them (float32 ``[W]`` deskewed rows, ``ys`` and
    ``xs`` the deskewed ink): in each vertical strip of ``strip`` columns, the middle of the least-ink rows of
    that strip's profile between the two bodies, interpolated between strip centres."""
    h, w = shape
    n_strips = max(1, -(-w // strip))
    hist = np.bincount((xs // strip) * h + ys, minlength=n_strips * h).reshape(n_strips, h).astype(np.float32)
    k = max(3, strip // 8)
    cum = np.cumsum(hist, axis=1)
    cum = np.concatenate([np.zeros((n_strips, k)), cum, np.repeat(cum[:, -1:], k, axis=1)], axis=1)
    smooth = cum[:, 2 * k :] - cum[:, : -2 * k]  # sum over rows y-k..y+k of each strip
    centres = (np.arange(n_strips) + 0.5) * strip
    paths: list[np.ndarray] = []
    for (_, b0), (a1, _) in itertools.pairwise(bodies):
        c0 = (b0 + a1) // 2 if a1 <= b0 else b0
        lo, hi = min(b0, c0), max(a1, c0 + 1)
        seg = smooth[:, lo:hi]
        low = seg <= seg.min(axis=1, keepdims=True) + 0.5
        idx = np.arange(hi - lo, dtype=np.float32)[None, :]
        mid = lo + (low * idx).sum(axis=1) / np.maximum(low.sum(axis=1), 1)
        path = np.interp(np.arange(w), centres, mid).astype(np.float32)
        if paths:  # paths never cross: each stays below the one above
            np.maximum(path, paths[-1] + 1, out=path)
        paths.append(path)
    return paths


def _main_span(profile: np.ndarray, gap: int) -> tuple[int, int]:
    """``[start, end)`` of a 1-D ink profile without dust at its ends: groups of ink separated from the rest
    by ``gap`` blank samples and holding less than :data:`DUST_SHARE` of the ink are left out."""
    runs = _runs(profile > 0)
    groups: list[list[int]] = []
    for a, b in runs.tolist():
        if groups and a - groups[-1][1] < gap:
            groups[-1][1] = b
        else:
            groups.append([a, b])
    total = float(profile.sum())
    mass = [float(profile[a:b].sum()) for a, b in groups]
    keep = [g for g, m in zip(groups, mass, strict=True) if m >= DUST_SHARE * total]
    if not keep:
        keep = [groups[int(np.argmax(mass))]]
    return keep[0][0], keep[-1][1]


#: Ink for line finding stands at least this much above the mean of its neighbourhood (an eighth of the
#: page): a blotch of uneven light that normalisation leaves above the threshold does not.
LOCAL_CONTRAST = 0.05


def _line_mask(ink: np.ndarray) -> np.ndarray:
    """The ink that lines are found in: bool ``[H, W]``, each pixel's ``3 x 3`` mean above
    :data:`INK_THRESHOLD` and :data:`LOCAL_CONTRAST` above the mean of the square an eighth of the page wide
    around it. Averaging first drops the pixel noise of dim, low-contrast photos (which the threshold alone
    keeps as a haze of dots that fills the gaps between lines); the local mean drops blotches of light.

    On a page whose polarity :func:`normalize_ink` misjudged (:func:`_dark_strokes`: light paper with a strong
    lighting gradient, its paper left as bright noise and its strokes dark) the mask is the dark dips
    instead: :data:`LOCAL_CONTRAST` below their surround and under half the threshold."""
    p = np.pad(ink, 1, mode="edge")
    rows = p[:-2] + p[1:-1] + p[2:]
    mean = (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / np.float32(9.0)
    local = mean - _surround(mean, max(15, min(ink.shape) // 8))
    if _dark_strokes(mean):  # polarity misjudged: the strokes are the dark dips in bright noisy paper
        return (-local > LOCAL_CONTRAST) & (mean < 0.5 * INK_THRESHOLD)
    return (mean > INK_THRESHOLD) & (local > LOCAL_CONTRAST)


#: Below this skewness of the stroke-scale contrast (:func:`_dark_strokes`) the strokes of a normalised
#: page are dark: its polarity was misjudged (a strong lighting gradient on light paper).
DARK_SKEW = 0.35


def _dark_strokes(mean: np.ndarray) -> bool:
    """Whether the strokes of a normalised page (its ``3 x 3`` means ``[H, W]``) are dark on bright paper:
    the contrast to the mean of the 32 x 32 square around each pixel is not skewed to the bright side (bright
    thin strokes on dark paper make a long bright tail; dark strokes on noisy paper do not)."""
    half = mean[::2, ::2]  # the 3 x 3 means are smooth enough to be read at every other pixel
    skew = _contrast_skewness(half, max(1, int(np.sqrt(half.size / 20_000))))
    return skew is not None and skew < DARK_SKEW


def _contrast_skewness(a: np.ndarray, step: int) -> float | None:
    """Skewness of the contrast of ``[H, W]`` to the mean of the 16 x 16 square around each pixel
    (:func:`_surround_blocks`), read at every ``step``-th pixel of each axis; None for a flat image. A long
    bright tail (positive) is bright thin strokes on dark paper, a long dark tail dark strokes on light paper.
    """
    small, f = _surround_blocks(a, 16)
    ys, xs = np.arange(0, a.shape[0], step), np.arange(0, a.shape[1], step)
    around = small.take(ys // f, axis=0).take(xs // f, axis=1)
    d = (a[::step, ::step] - around).astype(np.float64)
    d -= d.mean()
    d2 = d * d
    var = float(d2.mean())
    return float((d2 * d).mean()) / var**1.5 if var > 1e-12 else None


def _surround(a: np.ndarray, size: int) -> np.ndarray:
    """About the mean of ``[H, W]`` over the ``size x size`` square around each pixel -> ``[H, W]``: box
    means of blocks an eighth of ``size`` wide, averaged over ``size`` and spread back over their blocks."""
    small, f = _surround_blocks(a, size)
    if f == 1:
        return small
    return np.repeat(np.repeat(small, f, axis=0), f, axis=1)[: a.shape[0], : a.shape[1]]


def _surround_blocks(a: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """:func:`_surround` of ``[H, W]`` before it is spread back: ``[ceil(H / f), ceil(W / f)]``, one value per
    ``f x f`` block, and ``f``."""
    h, w = a.shape
    f = max(1, size // 8)
    hb, wb = -(-h // f), -(-w // f)
    short = (hb * f - h, wb * f - w)
    padded = np.pad(a, ((0, short[0]), (0, short[1])), mode="edge") if any(short) else a
    return _box_mean(_block_means(padded, f), max(1, size // f) | 1), f


def _block_means(a: np.ndarray, f: int) -> np.ndarray:
    """Mean of each ``f x f`` block of ``[hb * f, wb * f]`` -> ``[hb, wb]``, equal to the bit to
    ``a.reshape(hb, f, wb, f).mean(axis=(1, 3))``. That reduction runs an inner loop of ``f`` values per
    block (0.5 ms on a 100 x 800 line at ``f`` 2); under 8 (where numpy sums a block's row in order, not
    pairwise) the same sums are taken in the same order with one strided add per block column and row."""
    if f == 1:
        return a
    hb, wb = a.shape[0] // f, a.shape[1] // f
    if f >= 8:
        return a.reshape(hb, f, wb, f).mean(axis=(1, 3))
    rows = a[:, 0::f].copy()  # each block row's sum, its values left to right
    for j in range(1, f):
        rows += a[:, j::f]
    total = rows[0::f].copy()  # then the block's rows top to bottom
    for i in range(1, f):
        total += rows[i::f]
    total /= f * f
    return total


def _box_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``[H, W]`` over the ``k x k`` square centred on each pixel (edges padded), by running sums
    (float64)."""
    r = k // 2
    h, w = a.shape
    # the edge-padded image (as np.pad's "edge" mode, without its cost on small images) after a row and a
    # column of 0 for the sums
    c = np.zeros((h + 2 * r + 1, w + 2 * r + 1))
    c[1 + r : 1 + r + h, 1 + r : 1 + r + w] = a
    c[1 : 1 + r, 1 + r : 1 + r + w] = a[0]
    c[1 + r + h :, 1 + r : 1 + r + w] = a[-1]
    c[1:, 1 : 1 + r] = c[1:, 1 + r : 2 + r]
    c[1:, 1 + r + w :] = c[1:, r + w : 1 + r + w]
    # the running sums down the columns: each row added to the one above (the sums of cumsum(axis=0),
    # which walks one column at a time: half the cost on a line, a quarter on a page)
    for i in range(1, c.shape[0]):
        c[i] += c[i - 1]
    np.cumsum(c[1:, 1:], axis=1, out=c[1:, 1:])
    total = c[k : k + h, k : k + w] - c[:h, k : k + w]
    total -= c[k : k + h, :w]
    total += c[:h, :w]
    total /= k * k
    return total.astype(np.float32)


#: A band with less than this share of the median line's ink and :data:`WEAK_HEIGHT` of its height is no line
#: of its own (a line's descenders or ascenders cut off by a misplaced path, a smudge): it joins a neighbour.
WEAK_MASS = 0.3
WEAK_HEIGHT = 0.6


def _absorb(
    kept: list[tuple[int, int, LineBox]], weak: list[tuple[int, LineBox]]
) -> list[tuple[int, int, LineBox]]:
    """Lines as ``(first band, last band, box)``, top to bottom, with each weak band ``(band, box)`` joined
    to the neighbouring line (the band just above or below) whose box is nearest; one with no neighbour is
    dropped."""
    out = list(kept)
    for k, box in weak:
        near = [j for j, (a, b, _) in enumerate(out) if a == k + 1 or b == k - 1]
        if not near:
            continue
        j = min(near, key=lambda j: max(out[j][2].top - box.bottom, box.top - out[j][2].bottom))
        a, b, o = out[j]
        union = LineBox(
            min(o.top, box.top), max(o.bottom, box.bottom), min(o.left, box.left), max(o.right, box.right)
        )
        out[j] = (min(a, k), max(b, k), union)
    return out


def find_lines(ink: np.ndarray) -> list[Line]:
    """Find the text lines of a normalised page ``[H, W]`` (ink bright), top to bottom.

    0. *Mask*: :func:`_line_mask` (ink averaged over 3 x 3 pixels, above the threshold and its surround).
    1. *Deskew*: :func:`estimate_skew` finds the slope of the lines; all further work is on deskewed rows
       (a shear of the ink coordinates, not a resampling of the image).
    2. *Bodies*: the deskewed row profile, ruled-paper lines dropped (:func:`_rule_rows`), gives line bodies
       as in :func:`segment_lines`.
    3. *Paths*: between two bodies the separating path follows the least ink in vertical strips about two
       line heights wide, so curved lines and touching ascenders/descenders are cut where they meet.
    4. *Edges and dust*: a band at the top or bottom edge that is much shorter than the typical line
       (:data:`PARTIAL_LINE_SHARE`) is a neighbour line cut by the edge and is dropped, as is a band with
       almost no ink; specks away from a line's ink are left out of its box (:data:`DUST_SHARE`); a band
       short of both ink and height joins its nearest neighbour (:data:`WEAK_MASS`, :func:`_absorb`).

    Cost is linear in the pixels (a few histograms of the ink pixels).

    Raises:
        ImageError: more than :data:`MAX_LINES` lines.
    """
    mask = _line_mask(ink)
    h, w = mask.shape
    # rules and sheet edges: horizontal runs longer than a sixth of the page, vertical ones than half of it
    if w >= _MIN_SKEW_WIDTH:
        mask &= ~_long_runs(mask, max(32, w // 6))
    if h >= _MIN_SKEW_WIDTH:
        mask &= ~_long_runs(mask.T, max(32, h // 2)).T
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return []
    skew = estimate_skew(mask, (ys, xs))
    centre = w / 2
    dy = _deskewed_rows(ys, xs, skew, centre)
    offset = int(-dy.min())
    dy += offset
    hd = int(dy.max()) + 1
    profile = np.bincount(dy, minlength=hd).astype(np.float32)
    rules = _rule_rows(profile, w)
    if rules.any():  # ruled paper: its lines are not ink of the text
        keep = ~rules[dy]
        ys, xs, dy = ys[keep], xs[keep], dy[keep]
        if ys.size == 0:
            return []
        idx = np.arange(hd)
        profile[rules] = np.interp(idx[rules], idx[~rules], profile[~rules]) if (~rules).any() else 0.0
    smooth = _smooth(profile, max(3, h // 150))
    bodies, typical = _bodies(smooth)
    if not bodies:
        return []
    pitch = _pitch(dy, xs, hd, max(16, w // 16))
    bodies, typical = _split_tall(bodies, typical, profile, pitch)
    strip = int(np.clip(2.5 * typical, 16, max(16, w)))
    paths = _separators(dy, xs, (hd, w), bodies, strip)
    top_path = np.zeros(w, np.float32)
    bottom_path = np.full(w, float(hd), np.float32)
    bounds = [top_path, *paths, bottom_path]
    # which band each ink pixel falls in: count the separators above it
    band = np.zeros(ys.size, np.int64)
    for p in paths:
        band += dy >= p[xs]
    order = np.argsort(band, kind="stable")
    starts = np.searchsorted(band[order], np.arange(len(bodies) + 1))
    masses = np.diff(starts).astype(np.float64)
    typical_mass = float(np.median(masses)) if masses.size else 0.0
    found: list[tuple[int, LineBox, int, float]] = []  # (band, box, deskewed ink height, ink)
    for k in range(len(bodies)):
        sel = order[starts[k] : starts[k + 1]]
        if sel.size == 0 or sel.size < DUST_SHARE * typical_mass:
            continue
        by, bx, bdy = ys[sel], xs[sel], dy[sel]
        r0, r1 = _main_span(np.bincount(bdy - bdy.min()).astype(np.float32), max(2, int(0.3 * typical)))
        c0, c1 = _main_span(np.bincount(bx - bx.min()).astype(np.float32), max(4, int(1.5 * typical)))
        r0, r1, c0, c1 = r0 + int(bdy.min()), r1 + int(bdy.min()), c0 + int(bx.min()), c1 + int(bx.min())
        keep = (bdy >= r0) & (bdy < r1) & (bx >= c0) & (bx < c1)
        by, bx = by[keep], bx[keep]
        box = LineBox(int(by.min()), int(by.max()) + 1, int(bx.min()), int(bx.max()) + 1)
        found.append((k, box, r1 - r0, float(keep.sum())))
    if not found:
        return []
    line_height = float(np.median([f[2] for f in found]))
    # the image edge cuts a neighbour line in image rows: its box, not its deskewed span, is what is left
    box_height = float(np.median([f[1].bottom - f[1].top for f in found]))
    line_mass = float(np.median([f[3] for f in found]))
    kept: list[tuple[int, int, LineBox]] = []  # (first band, last band, box)
    weak: list[tuple[int, LineBox]] = []
    for i, (k, box, height, mass) in enumerate(found):
        at_edge = (i == 0 and box.top <= 1) or (i == len(found) - 1 and box.bottom >= h - 1)
        if at_edge and box.bottom - box.top < PARTIAL_LINE_SHARE * box_height:
            continue
        if height < SLIVER_SHARE * line_height:
            continue
        if mass < WEAK_MASS * line_mass and height < WEAK_HEIGHT * line_height:
            weak.append((k, box))
        else:
            kept.append((k, k, box))
    kept = _absorb(kept, weak)
    lines = [Line(box, skew, centre, bounds[a] - offset, bounds[b + 1] - offset) for a, b, box in kept]
    if len(lines) > MAX_LINES:
        raise ImageError(f"image has {len(lines)} text lines; at most {MAX_LINES} are read")
    return lines


def _band(height: int, line: Line) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where one found line's band lies in an image of ``height`` rows: the columns of its box (int64
    ``[w]``), the image row read at each deskewed row of the band (int64 ``[h, w]``, each column shifted by
    the page's skew) and whether that pixel is inside the band (bool ``[h, w]``: between the two paths and
    within the image)."""
    b = line.box
    cols = np.arange(b.left, b.right)
    shift = line.skew * (cols - line.centre)
    upper, lower = line.upper[cols], line.lower[cols]
    top = max(int(np.floor(upper.min())), int(np.floor((-shift).min())))
    bottom = min(int(np.ceil(lower.max())), int(np.ceil((height - shift).max())))
    rows = np.arange(top, max(bottom, top + 1))[:, None]
    src = np.rint(rows + shift[None, :]).astype(np.int64)
    inside = (src >= 0) & (src < height) & (rows >= upper[None, :]) & (rows < lower[None, :])
    return cols, src, inside


def line_ink(ink: np.ndarray, line: Line) -> np.ndarray:
    """The ink of one found line, deskewed: float32 ``[h, w]`` of the columns of its box and the rows of its
    band (between its two paths; each column shifted by the page's skew), everything outside the band (a
    neighbour's ascenders and descenders) set to 0."""
    cols, src, inside = _band(ink.shape[0], line)
    # one flat take of the pixels' offsets: half the cost of indexing rows and columns
    out = ink.ravel().take(np.clip(src, 0, ink.shape[0] - 1) * ink.shape[1] + cols)
    return np.where(inside, out, np.float32(0.0)).astype(np.float32, copy=False)

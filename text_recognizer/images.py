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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: The one pixel limit (width x height), checked from the header before any decoding (:func:`pixel_error`);
#: Pillow's own global bomb limit is left as it is for other importers.
MAX_PIXELS = 40_000_000
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
        too_big = pixel_error(img.width, img.height, max_pixels)
        if too_big:
            raise ImageError(f"{label}: {too_big}")
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


def _subsample(a: np.ndarray, n: int = 40_000) -> np.ndarray:
    """A regular grid of about ``n`` pixels of ``[H, W]``: cheap statistics of big images."""
    step = max(1, int(np.sqrt(a.size / n)))
    return a[::step, ::step]


def normalize_ink(gray: np.ndarray) -> np.ndarray:
    """Make ink bright on a flat dark background.

    Args:
        gray: uint8 ``[H, W]`` in either polarity, possibly unevenly lit.
    Returns:
        float32 ``[H, W]`` in ``[0, 1]``: 0 is background, 1 is the strongest ink.
    """
    g = gray.astype(np.float32) / 255.0
    sample = _subsample(g)
    lo, hi = np.percentile(sample, (1, 99))
    if np.median(sample) > 0.5 * (lo + hi):  # most of the page is light: dark ink on light paper
        g = 1.0 - g
    ink = g - _background(g)
    np.maximum(ink, 0.0, out=ink)
    scale = float(np.percentile(_subsample(ink), 99.7))
    if scale < 0.05:  # nearly blank: keep what contrast there is without amplifying noise
        scale = max(float(ink.max()), 0.05)
    ink /= scale
    return np.minimum(ink, 1.0, out=ink)


def ink_bbox(ink: np.ndarray, threshold: float = INK_THRESHOLD) -> tuple[int, int, int, int] | None:
    """Bounding box ``(top, bottom, left, right)`` (exclusive ends) of ink in ``[H, W]``, or None."""
    mask = ink > threshold
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_to_ink(ink: np.ndarray, margin: float = 0.08) -> np.ndarray:
    """Crop ``[H, W]`` to its ink plus a margin (a fraction of the ink height)."""
    box = ink_bbox(ink)
    if box is None:
        return ink
    top, bottom, left, right = box
    m = max(1, round(margin * (bottom - top)))
    h, w = ink.shape
    return ink[max(0, top - m) : min(h, bottom + m), max(0, left - m) : min(w, right + m)]


def resize_to_height(ink: np.ndarray, height: int, max_width: int) -> np.ndarray:
    """Resize ``[h, w]`` to ``[height, w']`` keeping the aspect ratio, ``w'`` clipped to ``max_width``."""
    h, w = ink.shape
    new_w = int(np.clip(round(w * height / max(h, 1)), 8, max_width))
    return np.clip(_resize_float(ink, new_w, height), 0.0, 1.0)


def prepare_line(gray: np.ndarray, height: int, max_width: int, normalized: bool = False) -> np.ndarray:
    """One line image -> model input.

    Args:
        gray: uint8 ``[H, W]`` (any polarity), or float ``[H, W]`` already normalised when ``normalized``.
    Returns:
        float32 ``[height, W']`` in ``[0, 1]``, ink bright, ``W' <= max_width``.
    """
    ink = gray if normalized else normalize_ink(gray)
    return resize_to_height(crop_to_ink(ink), height, max_width)


def image_stats(gray: np.ndarray) -> dict[str, Any]:
    """Width, height, mean brightness and ink polarity of a raw grayscale input ``[H, W]``, for drift
    monitoring (serving records it per request; staging stores the training reference)."""
    median = float(np.median(gray))
    return {
        "width": int(gray.shape[1]),
        "height": int(gray.shape[0]),
        "brightness": float(gray.mean()),
        "polarity": "dark_ink" if median > 127 else "light_ink",
    }


@dataclass(frozen=True)
class LineBox:
    """A text line of a page: rows ``top:bottom`` and columns ``left:right`` (exclusive ends)."""

    top: int
    bottom: int
    left: int
    right: int


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
    body = smooth > 0.25 * float(np.percentile(smooth[first:last], 90))
    found = _runs(body)
    if len(found) > 4 * MAX_LINES:  # slivers merge below, but not this many: refuse before looping
        raise ImageError(f"image has about {len(found)} text lines; at most {MAX_LINES} are read")
    runs: list[list[int]] = found.tolist()
    if not runs:
        return [LineBox(first, last, *_columns(mask[first:last]))]
    heights = np.array([b - a for a, b in runs], dtype=np.float32)
    typical = float(np.median(heights))
    # merge runs split by a thin gap (dots, accents) and fold slivers into their nearest neighbour
    merged: list[list[int]] = [runs[0]]
    for a, b in runs[1:]:
        gap = a - merged[-1][1]
        if gap < 0.35 * typical or (b - a) < 0.3 * typical or (merged[-1][1] - merged[-1][0]) < 0.3 * typical:
            merged[-1][1] = b
        else:
            merged.append([a, b])
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


def _columns(mask: np.ndarray) -> tuple[int, int]:
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, mask.shape[1])


def page_lines(gray: np.ndarray, height: int, max_width: int) -> tuple[list[LineBox], list[np.ndarray]]:
    """A page or a line (uint8 ``[H, W]``, any polarity) -> its line boxes, top to bottom, and each line
    prepared for the model (float32 ``[height, w_i]``): what the predictor reads."""
    ink = normalize_ink(gray)
    boxes = segment_lines(ink)
    crops = [
        prepare_line(ink[b.top : b.bottom, b.left : b.right], height, max_width, normalized=True)
        for b in boxes
    ]
    return boxes, crops

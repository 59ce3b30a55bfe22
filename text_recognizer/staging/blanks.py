"""Seeded images with no handwriting at all (numpy and Pillow): paper texture, sensor noise, specks, ruled
lines, lighting gradients and camera blur, alone or combined.

Staging reads a few of them as negative examples when it calibrates the confidence (any character read on
them is wrong); ``benchmarks.confidence`` measures on others (another seed) that they come back empty or with
a low confidence.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

#: the kinds of blank image, each one drawn by :func:`blank_image` (``mixed``: several at once)
BLANK_KINDS: tuple[str, ...] = ("paper", "noise", "specks", "ruled", "gradient", "blur", "mixed")


def _paper(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Light paper with a low-frequency fibre texture, float ``[h, w]`` in 0..255."""
    base = rng.uniform(170, 250)
    small = rng.normal(0, rng.uniform(2, 10), (max(2, h // 16), max(2, w // 16))).astype(np.float32)
    texture = np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.Resampling.BICUBIC))
    return base + texture


def _specks(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape
    for _ in range(int(rng.integers(3, 40))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        r = int(rng.integers(1, 4))
        img[max(0, y - r) : y + r, max(0, x - r) : x + r] = rng.uniform(0, 120)


def _ruled(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape
    step = int(rng.integers(24, 60))
    tone = rng.uniform(90, 190)
    width = int(rng.integers(1, 3))
    for y in range(int(rng.integers(5, step)), h, step):
        img[y : y + width] = tone
    if rng.random() < 0.5:  # a margin line
        x = int(rng.integers(w // 12, w // 5))
        img[:, x : x + width] = tone


def _gradient(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h) * rng.uniform(40, 120)
    img -= ramp - ramp.mean()


def blank_image(rng: np.random.Generator, kind: str) -> np.ndarray:
    """One image of ``kind`` (see :data:`BLANK_KINDS`) of a random size: uint8 ``[H, W]``, dark on light or,
    one time in five, inverted."""
    h, w = int(rng.integers(40, 600)), int(rng.integers(120, 900))
    img = _paper(rng, h, w)
    parts = {kind} if kind != "mixed" else set(rng.choice(BLANK_KINDS[:-1], size=3, replace=False).tolist())
    if "gradient" in parts:
        _gradient(rng, img)
    if "ruled" in parts:
        _ruled(rng, img)
    if "specks" in parts:
        _specks(rng, img)
    if "noise" in parts:
        img += rng.normal(0, rng.uniform(4, 25), img.shape)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if "blur" in parts:
        pil = Image.fromarray(out).filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 4.0))))
        out = np.asarray(pil)
        out = np.clip(out + rng.normal(0, 3, out.shape), 0, 255).astype(np.uint8)
    return 255 - out if rng.random() < 0.2 else out


def blank_images(n: int, seed: int) -> list[np.ndarray]:
    """``n`` blank images, the kinds in turn, reproducible from ``seed``: uint8 ``[H_i, W_i]`` each."""
    rng = np.random.default_rng(seed)
    return [blank_image(rng, BLANK_KINDS[i % len(BLANK_KINDS)]) for i in range(n)]

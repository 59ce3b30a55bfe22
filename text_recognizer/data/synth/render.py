"""The handwriting renderer: text -> an image that looks like a scan or phone photo of handwriting.

Three stages, all driven by one seeded generator:

1. *Writing* (:func:`_write_line`): characters are composed from cached glyphs of one font ("the writer"),
   with per-word jitter of size, baseline, spacing and slant and per-character jitter of position.
2. *Hand* (:func:`_distort`): one ``cv2.remap`` applies the per-word slant, a wavy and tilted baseline and a
   smooth elastic displacement field; strokes are thickened or thinned.
3. *Camera* (:func:`_photograph`): paper and ink tones, pen pressure, paper texture, uneven lighting
   (gradient, vignette), blur, resolution loss, noise, JPEG artefacts, and either polarity.

:func:`restyle_line` runs the last two stages on a real line's ink (augmenting users' corrected lines).

All sizes are relative to the x-height (height of a lowercase ``x``) so one config works at any scale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from text_recognizer.data.synth.fonts import THIN_SUPERSAMPLE, FontSpec, glyph, list_fonts
from text_recognizer.images import normalize_ink

Range = tuple[float, float]


@dataclass(frozen=True)
class RenderConfig:
    """Every knob of the renderer. Ranges are sampled uniformly; lengths are in x-heights unless noted."""

    # writer
    x_height_px: Range = (9.0, 20.0)  # x-height of rendered text in pixels (lines)
    paragraph_x_height_px: Range = (8.0, 16.0)  # the same for paragraphs (pages are scaled down more)
    font_size_step: float = 1.08  # font sizes are quantised geometrically (glyph cache hits)
    word_size_jitter: float = 0.03  # sd of the log size ratio of a word to the line
    char_size_jitter: float = 0.03  # sd of the log size ratio of a character to its word
    word_baseline_jitter: float = 0.1  # sd of a word's baseline shift
    char_baseline_jitter: float = 0.04  # sd of a character's baseline shift
    char_spacing_jitter: float = 0.05  # sd of extra pen advance after a character
    tracking: Range = (-0.05, 0.12)  # extra spacing between letters, per line
    word_gap: Range = (0.5, 1.4)  # space between words (of the line; each gap jitters by word_gap_jitter)
    word_gap_jitter: float = 0.25  # relative sd of each gap
    slant: Range = (-0.45, 0.35)  # shear of the whole text (x shift per unit height; > 0 leans right)
    word_slant_jitter: float = 0.06  # sd of a word's slant around the line's
    p_cursive_writer: float = 0.35  # chance that the writer is drawn from the fonts that join their letters
    # per-character shape: every instance of a letter is drawn a little differently
    writer_width: Range = (0.85, 1.5)  # width scale of a writer's letters and their advance (log-uniform)
    glyph_scale_jitter: float = 0.07  # sd of the log width and height scale of each character
    glyph_shear_jitter: float = 0.1  # sd of each character's shear
    glyph_rotation_jitter_deg: float = 3.0  # sd of each character's rotation
    p_joins: float = 0.3  # chance that a print writer sometimes joins letters with a connecting stroke
    join_rate: Range = (0.1, 0.6)  # share of adjacent lowercase letters such a writer joins
    pen_lift_rate: Range = (0.0, 0.04)  # gaps cut into strokes, per character
    retouch_rate: Range = (0.0, 0.03)  # characters gone over twice, slightly offset, per character
    # hand
    # chance of a fine, even pen (an ordinary ballpoint): letters redrawn along their centre lines,
    # thin_stroke wide (fonts.glyph)
    p_thin_pen: float = 0.35
    thin_stroke: Range = (0.07, 0.12)  # its stroke width in x-heights
    p_thicker: float = 0.25  # chance of a broader pen (strokes dilated)
    p_thinner: float = 0.1  # chance of a finer pen (strokes eroded; only for large enough text)
    p_width_variation: float = 0.4  # stroke width that changes slowly along the line (pressure)
    elastic_amplitude: Range = (0.0, 0.14)  # displacement of the elastic field
    elastic_scale: Range = (0.8, 2.0)  # spacing of its control points
    fine_elastic_amplitude: Range = (0.0, 0.06)  # a second, finer field that wobbles single strokes
    fine_elastic_scale: Range = (0.25, 0.5)
    baseline_wave: Range = (0.0, 0.25)  # amplitude of a slow baseline wave
    baseline_wave_period: Range = (8.0, 40.0)
    rotation_deg: Range = (-2.0, 2.0)  # tilt of a line (of the whole page for paragraphs)
    # paragraph layout
    line_spacing: Range = (2.3, 3.5)  # baseline-to-baseline distance
    line_spacing_jitter: float = 0.06  # relative sd per line
    line_rotation_jitter_deg: float = 0.4  # sd of each line's tilt around the page's
    indent_jitter: float = 0.6  # sd of each line's left edge
    p_first_line_indent: float = 0.3
    margin: Range = (0.3, 1.5)  # space around the text, each side independently
    # camera
    p_dark_background: float = 0.5  # light ink on dark background (like IAM crops) instead of dark on light
    paper_level: Range = (0.7, 1.0)  # paper brightness (light polarity)
    scan_paper_level: Range = (0.82, 1.0)  # paper brightness of scans shown inverted (dark polarity)
    ink_contrast: Range = (0.4, 0.9)  # paper minus ink brightness
    pressure_variation: Range = (0.0, 0.35)  # slow variation of ink darkness along the strokes
    paper_texture: Range = (0.0, 0.04)  # amplitude of blotchy paper texture
    texture_scale: Range = (1.0, 6.0)  # size of its blotches (and of pen pressure changes)
    lighting_gradient: Range = (0.0, 0.45)  # brightness change across the image (phone photo)
    vignette: Range = (0.0, 0.35)
    p_shadow: float = 0.2  # a soft shadow edge across the image (hand or phone)
    shadow_depth: Range = (0.15, 0.45)
    p_ruled: float = 0.15  # ruled notebook paper (light polarity)
    ruled_contrast: Range = (0.08, 0.3)  # of the rules, relative to the paper
    p_perspective: float = 0.3  # photo taken at an angle
    perspective: Range = (0.0, 0.04)  # corner displacement, a fraction of the image size
    p_blur: float = 0.5
    blur_sigma: Range = (0.3, 1.1)  # in pixels at x-height 12, scaled with it
    p_downscale: float = 0.25  # lose resolution: down and back up
    downscale: Range = (0.45, 0.85)
    noise_sigma: Range = (0.0, 0.05)  # gaussian pixel noise, in [0, 1] brightness
    p_jpeg: float = 0.35
    jpeg_quality: Range = (20.0, 90.0)
    # hard pages (all off by default; :data:`HARD_CASES` turns them on one at a time)
    page_rotation_deg: Range = (0.0, 0.0)  # rotation of the whole paragraph (ink, boxes and all)
    p_partial_neighbours: float = 0.0  # chance of each neighbour line (above, below) cut by the image edge
    partial_visible: Range = (0.15, 0.4)  # share of a cut neighbour line's height left in the image
    specks: Range = (0.0, 0.0)  # dust: specks per 100 square x-heights of page
    speck_size: Range = (0.08, 0.3)  # speck radius
    p_printed_label: float = 0.0  # chance of each line having a printed label ("Name:") on its left
    # real lines written again (:func:`restyle_line`)
    restyle_slant: float = 0.08  # sd of the slant added to the line
    restyle_stretch: float = 0.08  # sd of the log of its width scale
    restyle_ink_height: float = 2.6  # a line's ink height (ascenders to descenders) in x-heights
    restyle_camera: float = 0.5  # its chances of blur, resolution loss and JPEG, relative (it was shot once)


@dataclass(frozen=True)
class _Writer:
    """The sampled style of one image: one font, one size, one slant, for every line of it."""

    font: FontSpec
    x_height: float  # pixels
    size: int  # font size in pixels, quantised
    slant: float
    tracking: float  # pixels
    word_gap: float  # pixels
    pen: int  # stroke change: 0 none, 2 or 3 dilate with a k x k square, -2 erode with 2 x 2
    thin: int  # width of a fine pen in pixels at the glyphs' supersampled size (0: the font's own strokes)
    join_rate: float  # share of adjacent lowercase letters joined by a drawn stroke
    pen_lift_rate: float
    retouch_rate: float
    width_variation: bool
    width: float  # horizontal scale of every letter and its advance (wide or narrow hands)


def _u(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def _quantise(size: float, step: float) -> int:
    return max(6, round(step ** round(np.log(max(size, 1.0)) / np.log(step))))


@lru_cache(maxsize=1)
def _families() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(all families, families whose fonts join their letters), sorted."""
    fonts = list_fonts()
    return tuple(sorted({f.family for f in fonts})), tuple(sorted({f.family for f in fonts if f.joined}))


def _sample_writer(
    rng: np.random.Generator, cfg: RenderConfig, x_height_px: Range, fonts: tuple[FontSpec, ...] = ()
) -> _Writer:
    """A writer drawn from ``fonts`` (default: every training font, :func:`list_fonts`)."""
    if fonts:
        families = tuple(sorted({f.family for f in fonts}))
        cursive = tuple(sorted({f.family for f in fonts if f.joined}))
    else:
        fonts = list_fonts()
        families, cursive = _families()
    pool = cursive if cursive and rng.random() < cfg.p_cursive_writer else families
    family = pool[int(rng.integers(len(pool)))]
    options = [f for f in fonts if f.family == family]
    font = options[int(rng.integers(len(options)))]
    xh = _u(rng, x_height_px)
    size = _quantise(xh / font.x_height, cfg.font_size_step)
    roll, pen, thin = rng.random(), 0, 0
    if roll < cfg.p_thin_pen:
        thin = max(1, round(_u(rng, cfg.thin_stroke) * xh * THIN_SUPERSAMPLE))
    elif roll < cfg.p_thin_pen + cfg.p_thicker:
        pen = 3 if xh > 15 and rng.random() < 0.5 else 2
    elif roll < cfg.p_thin_pen + cfg.p_thicker + cfg.p_thinner and size >= 40:
        pen = -2
    joins = _u(rng, cfg.join_rate) if not font.joined and rng.random() < cfg.p_joins else 0.0
    return _Writer(
        font=font,
        x_height=xh,
        size=size,
        slant=_u(rng, cfg.slant),
        tracking=_u(rng, cfg.tracking) * xh,
        word_gap=_u(rng, cfg.word_gap) * xh,
        pen=pen,
        thin=thin,
        join_rate=joins,
        pen_lift_rate=_u(rng, cfg.pen_lift_rate),
        retouch_rate=_u(rng, cfg.retouch_rate),
        width_variation=bool(rng.random() < cfg.p_width_variation),
        width=float(np.exp(_u(rng, (np.log(cfg.writer_width[0]), np.log(cfg.writer_width[1]))))),
    )


@dataclass
class _LineInk:
    """Ink of one line: float32 ``[H, W]`` coverage in ``[0, 1]`` and the row of its baseline."""

    ink: np.ndarray
    baseline: int


def _write_line(text: str, w: _Writer, rng: np.random.Generator, cfg: RenderConfig) -> _LineInk:
    """Compose ``text`` from glyphs with per-word and per-character jitter, then distort it.

    Returns the ink with a pad of about one x-height of blank around the text.
    """
    xh = w.x_height
    words = text.split(" ")
    n = len(words)
    sizes = [
        _quantise(w.size * float(np.exp(rng.normal(0.0, cfg.word_size_jitter))), cfg.font_size_step)
        for _ in range(n)
    ]
    word_dy = rng.normal(0.0, cfg.word_baseline_jitter * xh, n)
    gaps = w.word_gap * w.width * np.clip(rng.normal(1.0, cfg.word_gap_jitter, n), 0.4, 2.0)
    word_slant = w.slant + rng.normal(0.0, cfg.word_slant_jitter, n)
    n_chars = len(text)
    char_dy = rng.normal(0.0, cfg.char_baseline_jitter * xh, n_chars)
    char_dx = rng.normal(0.0, cfg.char_spacing_jitter * xh, n_chars)
    char_scale = np.exp(rng.normal(0.0, cfg.char_size_jitter, n_chars))

    # per-character shape: log scales (x, y), shear and rotation of each instance
    shape = np.stack(
        [
            np.log(w.width) + rng.normal(0.0, cfg.glyph_scale_jitter, n_chars),
            rng.normal(0.0, cfg.glyph_scale_jitter, n_chars),
            rng.normal(0.0, cfg.glyph_shear_jitter, n_chars),
            np.deg2rad(rng.normal(0.0, cfg.glyph_rotation_jitter_deg, n_chars)),
        ],
        axis=1,
    )
    join = rng.random(n_chars) < w.join_rate
    retouch = rng.random(n_chars) < w.retouch_rate

    # lay out: (glyph, x, y relative to the baseline, char index), and word extents for the slant
    placed: list[tuple[np.ndarray, float, float, int]] = []
    spans: list[tuple[float, float]] = []
    x, k = 0.0, 0
    top, bottom = -2.0 * xh, 1.0 * xh
    for i, word in enumerate(words):
        x0 = x
        for ch in word:
            g = glyph(w.font.path, _quantise(sizes[i] * char_scale[k], cfg.font_size_step), ch, w.thin)
            if g.mask.size:
                mask, dl, dt = _vary_glyph(g.mask, shape[k])
                gy = g.top + dt + word_dy[i] + char_dy[k]
                # _vary_glyph scales about the glyph's centre: move that centre out with the writer's width
                gx = x + g.left + dl + (w.width - 1.0) * (g.left + g.mask.shape[1] / 2)
                placed.append((mask, gx, gy, k))
                top, bottom = min(top, gy), max(bottom, gy + mask.shape[0])
            x += g.advance * w.width + w.tracking + char_dx[k]
            k += 1
        spans.append((x0, x))
        x += gaps[i]
        k += 1  # the space
    text_w = spans[-1][1] if spans else 1.0

    # canvas with room for slant, tilt and waves
    height = bottom - top
    angle = np.deg2rad(_u(rng, cfg.rotation_deg))
    wave = _u(rng, cfg.baseline_wave) * xh
    pad_x = int(abs(w.slant) * height + 2 * xh)
    pad_y = int(abs(np.tan(angle)) * text_w / 2 + wave + xh)
    W = int(text_w) + 2 * pad_x + 1
    H = int(height) + 2 * pad_y + 1
    baseline = pad_y - int(top)
    canvas = np.zeros((H, W), np.uint8)
    boxes: dict[int, tuple[int, int, np.ndarray]] = {}
    for mask, gx, gy, ci in placed:
        r, c = baseline + round(gy), pad_x + round(gx)
        _stamp(canvas, mask, r, c)
        boxes[ci] = (r, c, mask)
        if retouch[ci]:  # gone over again, a pixel off
            _stamp(canvas, (mask * 0.8).astype(np.uint8), r + int(rng.integers(-1, 2)), c + 1)
    stroke_px = max(1, round((0.1 if w.thin else w.font.stroke) * xh))
    _join_letters(canvas, text, boxes, join, stroke_px)
    _lift_pen(canvas, boxes, w.pen_lift_rate, stroke_px, rng)
    if w.width_variation:
        canvas = _vary_width(canvas, xh, rng)

    canvas = _stroke_width(canvas, w.pen)
    shear: np.ndarray = np.full(W, w.slant, np.float32)
    for (s0, s1), sl in zip(spans, word_slant, strict=True):
        shear[pad_x + int(s0) : pad_x + int(s1)] = sl
    k_smooth = max(3, int(xh))
    shear = np.convolve(shear, np.ones(k_smooth, np.float32) / k_smooth, mode="same")
    ink = _distort(canvas, baseline, shear, angle, wave, xh, rng, cfg)
    return _LineInk(ink, baseline)


def _vary_glyph(mask: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Warp one glyph instance: uint8 ``[h, w]`` -> a new mask and the shift ``(dx, dy)`` of its top-left.

    ``params`` = (log x scale, log y scale, shear, rotation in radians), applied about the glyph's centre
    (so a letter keeps its place but never has exactly the same shape twice).
    """
    h, w = mask.shape
    sx, sy = float(np.exp(params[0])), float(np.exp(params[1]))
    sh, rot = float(params[2]), float(params[3])
    cos, sin = np.cos(rot), np.sin(rot)
    a = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, sh], [0.0, 1.0]]) @ np.diag([sx, sy])
    pad = int(np.ceil(0.25 * max(h, w))) + 1
    out_h, out_w = h + 2 * pad, w + 2 * pad
    centre_in = np.array([(w - 1) / 2, (h - 1) / 2])
    centre_out = np.array([(out_w - 1) / 2, (out_h - 1) / 2])
    matrix = np.hstack([a, (centre_out - a @ centre_in)[:, None]]).astype(np.float32)
    warped = cv2.warpAffine(mask, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR)
    rows, cols = np.flatnonzero(warped.max(1) > 0), np.flatnonzero(warped.max(0) > 0)
    if rows.size == 0:
        return mask, 0, 0
    return warped[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], int(cols[0]) - pad, int(rows[0]) - pad


def _stamp(canvas: np.ndarray, mask: np.ndarray, r: int, c: int) -> None:
    """Draw ``mask`` onto ``canvas`` (same dtype) with its top-left at row ``r``, column ``c`` (the max of the
    two), clipped to the canvas."""
    H, W = canvas.shape
    h, wd = mask.shape
    r0, c0 = max(r, 0), max(c, 0)
    r1, c1 = min(r + h, H), min(c + wd, W)
    if r1 > r0 and c1 > c0:
        region = canvas[r0:r1, c0:c1]
        np.maximum(region, mask[r0 - r : r1 - r, c0 - c : c1 - c], out=region)


def _join_letters(
    canvas: np.ndarray,
    text: str,
    boxes: dict[int, tuple[int, int, np.ndarray]],
    join: np.ndarray,
    stroke_px: int,
) -> None:
    """Connect adjacent lowercase letters ``k-1, k`` where ``join[k]``: a stroke from the lowest ink of the
    first letter's right edge to the lower ink of the second letter's left edge, as in joined-up writing."""
    for k in range(1, len(text)):
        if not (join[k] and text[k].islower() and text[k - 1].islower()):
            continue
        if k - 1 not in boxes or k not in boxes:
            continue
        (r0, c0, m0), (r1, c1, m1) = boxes[k - 1], boxes[k]
        # exit point: bottom-most ink in the right quarter of the first letter
        right = m0[:, (3 * m0.shape[1]) // 4 :]
        ys, xs = np.nonzero(right > 128)
        if ys.size == 0:
            continue
        i = int(np.argmax(ys))
        start = (c0 + (3 * m0.shape[1]) // 4 + int(xs[i]), r0 + int(ys[i]))
        # entry point: left-most ink in the lower half of the second letter
        lower = m1[m1.shape[0] // 2 :, :]
        ys, xs = np.nonzero(lower > 128)
        if ys.size == 0:
            continue
        j = int(np.argmin(xs))
        end = (c1 + int(xs[j]), r1 + m1.shape[0] // 2 + int(ys[j]))
        if end[0] - start[0] > 3 * m0.shape[1] or end[0] < start[0] - 2:
            continue
        cv2.line(canvas, start, end, 255, thickness=stroke_px, lineType=cv2.LINE_AA)


def _lift_pen(
    canvas: np.ndarray,
    boxes: dict[int, tuple[int, int, np.ndarray]],
    rate: float,
    stroke_px: int,
    rng: np.random.Generator,
) -> None:
    """Cut small gaps into strokes (the pen lifted or skipped), about ``rate`` per character."""
    n = rng.binomial(len(boxes), rate) if boxes else 0
    keys = list(boxes)
    for _ in range(n):
        r, c, m = boxes[keys[int(rng.integers(len(keys)))]]
        ys, xs = np.nonzero(m > 128)
        if ys.size == 0:
            continue
        i = int(rng.integers(ys.size))
        cv2.circle(canvas, (c + int(xs[i]), r + int(ys[i])), max(1, stroke_px), 0, thickness=-1)


def _vary_width(canvas: np.ndarray, xh: float, rng: np.random.Generator) -> np.ndarray:
    """Stroke width that changes slowly along the line: a blend of thinner and thicker ink,
    weighted by a smooth random profile across the columns."""
    thick = cv2.dilate(canvas, np.ones((2, 2), np.uint8))
    thin = cv2.erode(canvas, np.ones((2, 2), np.uint8)) if xh >= 14 else canvas
    W = canvas.shape[1]
    n = max(2, int(W / (3 * xh)) + 2)
    profile = cv2.resize(rng.uniform(0, 1, (1, n)).astype(np.float32), (W, 1), interpolation=cv2.INTER_CUBIC)
    t = np.clip(profile, 0, 1)
    return (thin * (1 - t) + thick * t).astype(np.uint8)


def _stroke_width(canvas: np.ndarray, pen: int) -> np.ndarray:
    """Thicken or thin the strokes of uint8 ``[H, W]`` ink for the writer's pen."""
    if pen > 0:
        return cv2.dilate(canvas, np.ones((pen, pen), np.uint8))
    if pen < 0:
        return cv2.erode(canvas, np.ones((-pen, -pen), np.uint8))
    return canvas


def _smooth_fields(
    shape: tuple[int, int], spacing: float, rng: np.random.Generator, sd: float = 1.0
) -> np.ndarray:
    """Two smooth random fields, float32 ``[H, W, 2]``, with control points of standard deviation ``sd`` every
    ``spacing`` pixels.

    (OpenCV's bicubic resize is several times faster on two channels than on one.)
    """
    h, w = shape
    gh, gw = max(2, int(h / spacing) + 2), max(2, int(w / spacing) + 2)
    coarse = rng.standard_normal((gh, gw, 2), dtype=np.float32) * np.float32(sd)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


_NOISE_TILE = 1024


@lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    """A fixed float32 ``[1024, 1024]`` tile of standard normal noise (drawing fresh noise costs more)."""
    return np.random.default_rng(12345).standard_normal((_NOISE_TILE, _NOISE_TILE), dtype=np.float32)


def _pixel_noise(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Standard normal noise ``[H, W]``: a random crop of the tile, randomly flipped (wrapped if large)."""
    h, w = shape
    tile = _noise_tile()
    if rng.random() < 0.5:
        tile = tile.T
    flip_r, flip_c = (1 if f else -1 for f in rng.random(2) < 0.5)
    tile = tile[::flip_r, ::flip_c]
    r = int(rng.integers(0, max(1, _NOISE_TILE - h + 1)))
    c = int(rng.integers(0, max(1, _NOISE_TILE - w + 1)))
    crop = tile[r : r + h, c : c + w]
    if crop.shape != (h, w):
        crop = np.pad(crop, ((0, h - crop.shape[0]), (0, w - crop.shape[1])), mode="wrap")
    return crop


def _distort(
    canvas: np.ndarray,
    baseline: int,
    shear: np.ndarray,
    angle: float,
    wave: float,
    xh: float,
    rng: np.random.Generator,
    cfg: RenderConfig,
) -> np.ndarray:
    """One remap of uint8 ``[H, W]`` ink of x-height ``xh`` pixels: slant per column, tilt, baseline wave,
    elastic field.

    Returns float32 ``[H, W]`` in ``[0, 1]``.
    """
    H, W = canvas.shape
    xs = np.arange(W, dtype=np.float32)[None, :]
    ys = np.arange(H, dtype=np.float32)[:, None]
    period = _u(rng, cfg.baseline_wave_period) * xh
    phase = _u(rng, (0.0, 2 * np.pi))
    dy_col = wave * np.sin(2 * np.pi * xs / period + phase) + np.tan(angle) * (xs - W / 2)
    # one [H, W, 2] map of source (x, y) per output pixel: elastic fields, plus slant, plus baseline
    maps = np.zeros((H, W, 2), np.float32)
    for amplitude, scale in (
        (cfg.elastic_amplitude, cfg.elastic_scale),
        (cfg.fine_elastic_amplitude, cfg.fine_elastic_scale),
    ):
        amp = _u(rng, amplitude) * xh
        spacing = max(2.0, _u(rng, scale) * xh)
        if amp > 0.1:
            maps += _smooth_fields((H, W), spacing, rng, amp)
    maps[:, :, 0] += xs + shear[None, :] * (ys - baseline)
    maps[:, :, 1] += ys + dy_col
    # map1 holds both coordinates, so map2 is None (which OpenCV's type stubs do not allow)
    out = cv2.remap(canvas, maps, None, interpolation=cv2.INTER_LINEAR)  # type: ignore[call-overload, unused-ignore]
    return out.astype(np.float32) * (1.0 / 255.0)


_Crop = tuple[tuple[int, int, int, int], tuple[int, int, int, int]]


def _crop_pad(
    ink: np.ndarray, baselines: list[float], xh: float, rng: np.random.Generator, cfg: RenderConfig
) -> tuple[np.ndarray, list[float], _Crop]:
    """Crop float32 ``[H, W]`` ink to its extent and add random margins on each side.

    Returns the new ink, the baseline rows moved with it and the crop: ``(top, bottom, left, right)`` rows and
    columns of the old array kept and the padding ``(top, bottom, left, right)`` added (apply it to
    anything that must stay aligned with the ink: :func:`_crop_like`).
    """
    rows = np.flatnonzero(ink.max(axis=1) > 0.1)
    cols = np.flatnonzero(ink.max(axis=0) > 0.1)
    if rows.size == 0:
        pad = int(xh)
        box = (0, ink.shape[0], 0, ink.shape[1])
        return np.pad(ink, pad), [b + pad for b in baselines], (box, (pad, pad, pad, pad))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    ink = ink[box[0] : box[1], box[2] : box[3]]
    t, b, left, right = (int(_u(rng, cfg.margin) * xh) + 1 for _ in range(4))
    padded = np.pad(ink, ((t, b), (left, right)))
    return padded, [y - rows[0] + t for y in baselines], (box, (t, b, left, right))


def _crop_like(a: np.ndarray, crop: _Crop) -> np.ndarray:
    """Apply a :func:`_crop_pad` crop (its third result) to another ``[H, W]`` array."""
    (r0, r1, c0, c1), (t, b, left, right) = crop
    return np.pad(a[r0:r1, c0:c1], ((t, b), (left, right)))


def _rules(shape: tuple[int, int], baselines: list[float], xh: float, rng: np.random.Generator) -> np.ndarray:
    """Ruled-paper lines under the text: float32 ``[H, 1]`` darkness profile in ``[0, 1]``."""
    h = shape[0]
    spacing = baselines[1] - baselines[0] if len(baselines) > 1 else _u(rng, (2.5, 3.5)) * xh
    offset = baselines[0] + _u(rng, (0.0, 0.3)) * xh
    first = offset - spacing * np.ceil(offset / spacing)
    profile = np.zeros((h, 1), np.float32)
    width = 1.0 + float(rng.random() < 0.3)
    y = first
    while y < h + width:
        r0, r1 = int(np.floor(y)), int(np.floor(y + width))
        profile[max(r0, 0) : max(min(r1 + 1, h), 0)] = 1.0
        y += spacing
    return cv2.GaussianBlur(profile, (1, 0), sigmaX=0.1, sigmaY=0.6)


def _lighting(
    shape: tuple[int, int], dark: bool, rng: np.random.Generator, cfg: RenderConfig
) -> np.ndarray | None:
    """Multiplicative lighting float32 ``[H, W]`` around 1: gradient, vignette, shadow edge (or None)."""
    scale = 0.4 if dark else 1.0  # scans (the dark polarity) are evenly lit
    grad = _u(rng, cfg.lighting_gradient) * scale
    vig = _u(rng, cfg.vignette) * scale
    shadow = not dark and rng.random() < cfg.p_shadow
    if grad < 0.01 and vig < 0.01 and not shadow:
        return None
    # computed on a coarse grid and upsampled: the field is smooth
    n = 17
    u = np.linspace(-1.0, 1.0, n, dtype=np.float32)[None, :]
    v = np.linspace(-1.0, 1.0, n, dtype=np.float32)[:, None]
    theta = _u(rng, (0.0, 2 * np.pi))
    cx, cy = _u(rng, (-0.5, 0.5)), _u(rng, (-0.5, 0.5))
    light = 1.0 + grad * 0.5 * (u * np.cos(theta) + v * np.sin(theta))
    light = light - vig * ((u - cx) ** 2 + (v - cy) ** 2) * 0.5
    if shadow:
        phi = _u(rng, (0.0, 2 * np.pi))
        edge = (u * np.cos(phi) + v * np.sin(phi) - _u(rng, (-0.6, 0.6))) / _u(rng, (0.05, 0.3))
        light = light * (1.0 - _u(rng, cfg.shadow_depth) / (1.0 + np.exp(-edge)))
    h, w = shape
    return cv2.resize(light.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def _perspective(
    img: np.ndarray, rng: np.random.Generator, cfg: RenderConfig, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Warp float32 ``[H, W]`` as if photographed at a slight angle (edges replicated), and the uint8 line
    labels ``[H, W]`` (when given) with it.

    Corners only move inwards, so no text leaves the image.
    """
    h, w = img.shape
    amount = _u(rng, cfg.perspective)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    inwards = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float32)
    jitter = rng.uniform(0.0, amount, (4, 2)) * np.array([w, h]) * inwards
    dst = (src + jitter).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if labels is not None:
        labels = cv2.warpPerspective(labels, matrix, (w, h), flags=cv2.INTER_NEAREST)
    return out, labels


def _photograph(
    ink: np.ndarray,
    baselines: list[float],
    xh: float,
    rng: np.random.Generator,
    cfg: RenderConfig,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Ink coverage float32 ``[H, W]`` -> uint8 ``[H, W]`` photo or scan of it on paper, and the uint8
    ``[H, W]`` line labels (when given) moved by the same geometric warp.

    ``baselines`` (rows of the text's baselines) place ruled-paper lines when the paper is ruled.
    """
    H, W = ink.shape
    dark = rng.random() < cfg.p_dark_background
    paper = _u(rng, cfg.scan_paper_level if dark else cfg.paper_level)
    ink_level = max(0.0, paper - _u(rng, cfg.ink_contrast))
    # pen pressure: ink darkness varies slowly along the strokes; paper texture: blotches
    pressure = _u(rng, cfg.pressure_variation)
    texture = _u(rng, cfg.paper_texture) * (0.5 if dark else 1.0)
    fields = _smooth_fields((H, W), _u(rng, cfg.texture_scale) * xh, rng)
    ink = ink * np.clip(1.0 - pressure * np.abs(fields[:, :, 0]), 0.2, 1.0)
    bg = paper + texture * fields[:, :, 1]
    if not dark and rng.random() < cfg.p_ruled:
        bg = bg - (_u(rng, cfg.ruled_contrast) * paper) * _rules((H, W), baselines, xh, rng)
    img: np.ndarray = bg + (ink_level - bg) * ink
    light = _lighting((H, W), dark, rng, cfg)
    if light is not None:
        img = img * light
    if dark:
        img = 1.0 - img
    img = np.asarray(img, dtype=np.float32)
    if not dark and rng.random() < cfg.p_perspective:
        img, labels = _perspective(img, rng, cfg, labels)
    if rng.random() < cfg.p_blur:
        sigma = _u(rng, cfg.blur_sigma) * xh / 12.0
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma)
    if rng.random() < cfg.p_downscale:
        f = _u(rng, cfg.downscale)
        small = cv2.resize(img, (max(2, int(W * f)), max(2, int(H * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    noise = _u(rng, cfg.noise_sigma)
    if noise > 0.003:
        img = img + _pixel_noise((H, W), rng) * noise
    out: np.ndarray = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        quality = int(_u(rng, cfg.jpeg_quality))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
        if decoded is not None:
            out = decoded
    return out, labels


def render_line(
    text: str, rng: np.random.Generator, cfg: RenderConfig | None = None, fonts: tuple[FontSpec, ...] = ()
) -> np.ndarray:
    """Render one line of handwriting.

    Args:
        text: the line (characters of the vocabulary, no newline).
        rng: the only source of randomness: same generator state, same image.
        cfg: renderer knobs; defaults to :class:`RenderConfig`.
        fonts: the fonts to write with (e.g. a held-out writer); default every training font.
    Returns:
        uint8 ``[H, W]`` grayscale, dark ink on light paper or light ink on dark.
    """
    cfg = cfg or RenderConfig()
    w = _sample_writer(rng, cfg, cfg.x_height_px, fonts)
    line = _write_line(text, w, rng, cfg)
    ink, baselines, _ = _crop_pad(line.ink, [float(line.baseline)], w.x_height, rng, cfg)
    return _photograph(ink, baselines, w.x_height, rng, cfg)[0]


def restyle_line(image: np.ndarray, rng: np.random.Generator, cfg: RenderConfig | None = None) -> np.ndarray:
    """A real line written and photographed again, to augment a few real lines (users' corrections): its
    ink (:func:`~text_recognizer.images.normalize_ink`) stretched in width, slanted, tilted, waved,
    elastically displaced and thickened or thinned like the hand stage, given fresh margins and photographed
    on fresh paper like the camera stage. The writer's letter shapes stay.

    Args:
        image: uint8 ``[H, W]``, either polarity: one line.
    Returns:
        uint8 ``[H', W']``; ``image`` itself when it has no ink.
    """
    cfg = cfg or RenderConfig()
    ink = normalize_ink(image)
    rows = np.flatnonzero(ink.max(axis=1) > 0.1)
    if rows.size == 0:
        return image
    xh = max(3.0, (rows[-1] + 1 - rows[0]) / cfg.restyle_ink_height)
    h, w = ink.shape
    width = max(2, round(w * float(np.exp(rng.normal(0.0, cfg.restyle_stretch)))))
    ink = cv2.resize(ink, (width, h), interpolation=cv2.INTER_LINEAR)
    slant = float(rng.normal(0.0, cfg.restyle_slant))
    pad_y, pad_x = int(xh), int(abs(slant) * h + 2 * xh)
    canvas = np.pad(np.asarray(ink * 255.0 + 0.5, np.uint8), ((pad_y, pad_y), (pad_x, pad_x)))
    r = rng.random()
    pen = 2 if r < cfg.p_thicker else -2 if r < cfg.p_thicker + cfg.p_thinner and xh >= 12 else 0
    canvas = _stroke_width(canvas, pen)
    baseline = pad_y + int(rows[-1])
    shear = np.full(canvas.shape[1], slant, np.float32)
    angle = np.deg2rad(_u(rng, cfg.rotation_deg))
    wave = _u(rng, cfg.baseline_wave) * xh
    out = _distort(canvas, baseline, shear, angle, wave, xh, rng, cfg)
    out, baselines, _ = _crop_pad(out, [float(baseline)], xh, rng, cfg)
    k = cfg.restyle_camera
    camera = replace(cfg, p_blur=cfg.p_blur * k, p_downscale=cfg.p_downscale * k, p_jpeg=cfg.p_jpeg * k)
    return _photograph(out, baselines, xh, rng, camera)[0]


def render_paragraph(
    lines: list[str], rng: np.random.Generator, cfg: RenderConfig | None = None
) -> np.ndarray:
    """Render lines written by one hand, stacked as a paragraph.

    Args:
        lines: the lines, top to bottom (at least one).
        rng: the only source of randomness.
        cfg: renderer knobs; defaults to :class:`RenderConfig`.
    Returns:
        uint8 ``[H, W]`` grayscale.
    """
    return render_page(lines, rng, cfg).image


#: Box of a line's ink in image pixels: ``(top, bottom, left, right)``, exclusive ends (``images.LineBox``).
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Page:
    """A rendered paragraph: uint8 ``[H, W]`` image, its text (lines joined by ``\n``; a printed label is
    part of its line's text) and the box of each line's ink, top to bottom. Partial neighbour lines cut by
    the image edge are not lines of the text and have no box.

    ``line_map`` is uint8 ``[H, W]``: ``k`` where the ink is line ``k``'s (1-based, top to bottom; where
    lines cross, the stronger ink's), :data:`NOT_A_LINE` on the ink of cut neighbour lines, 0 on paper and
    dust."""

    image: np.ndarray
    text: str
    boxes: tuple[Box, ...]
    line_map: np.ndarray


#: Label values of the line-label map that are not lines of the text.
_TOP_NEIGHBOUR, _BOTTOM_NEIGHBOUR = 250, 251
#: :attr:`Page.line_map`'s value on ink that is no line of the text (neighbour lines cut by the edge).
NOT_A_LINE = 255
#: Coverage above which a pixel belongs to a line's ink (for its box).
_LABEL_COVERAGE = 0.35
#: Printed labels of form fields (drawn by :func:`_printed_label`).
LABELS = ("Name:", "Date:", "Address:", "Notes:", "Ref.", "Item:", "Signed:", "To:")


def render_page(lines: list[str], rng: np.random.Generator, cfg: RenderConfig | None = None) -> Page:
    """:func:`render_paragraph` with the ground truth of each line's box.

    The box is tracked through every geometric step by a uint8 map of which line each ink pixel belongs to,
    moved with the ink (placement, rotation, crop, partial-edge cut, perspective) and measured at the end.
    With the default config the image is exactly :func:`render_paragraph`'s (the hard-page knobs draw from
    ``rng`` only when on).
    """
    if not lines:
        raise ValueError("render_paragraph needs at least one line")
    cfg = cfg or RenderConfig()
    w = _sample_writer(rng, cfg, cfg.paragraph_x_height_px)
    xh = w.x_height
    page_angle = _u(rng, cfg.rotation_deg)
    spacing = _u(rng, cfg.line_spacing) * xh
    texts = list(lines)
    neighbours = (
        [bool(rng.random() < cfg.p_partial_neighbours) for _ in range(2)]
        if cfg.p_partial_neighbours > 0
        else [False, False]
    )
    # a cut neighbour line is written like the others (its words: another line of the paragraph)
    written = ([lines[-1]] if neighbours[0] else []) + texts + ([lines[0]] if neighbours[1] else [])
    inks: list[_LineInk] = []
    for text in written:
        tilt = page_angle + float(rng.normal(0.0, cfg.line_rotation_jitter_deg))
        inks.append(_write_line(text, w, rng, replace(cfg, rotation_deg=(tilt, tilt))))
    codes = (
        ([_TOP_NEIGHBOUR] if neighbours[0] else [])
        + list(range(1, len(texts) + 1))
        + ([_BOTTOM_NEIGHBOUR] if neighbours[1] else [])
    )
    # place each line's baseline on the page, with indents
    lefts = rng.normal(0.0, cfg.indent_jitter * xh, len(inks))
    if rng.random() < cfg.p_first_line_indent:
        lefts[0 + neighbours[0]] += _u(rng, (1.0, 4.0)) * xh
    lefts -= lefts.min()
    baselines = [0.0]
    for _ in inks[1:]:
        jitter = float(np.clip(rng.normal(1.0, cfg.line_spacing_jitter), 0.8, 1.2))
        baselines.append(baselines[-1] + spacing * jitter)
    printed = _sample_labels(len(texts), rng, cfg)
    if printed:
        lefts += max(_printed_width(label, xh) for label in printed.values()) + 1.5 * xh
    tops = [int(b) - li.baseline for b, li in zip(baselines, inks, strict=True)]
    y0 = -min(tops)
    H = max(t + y0 + li.ink.shape[0] for t, li in zip(tops, inks, strict=True))
    W = max(int(x) + li.ink.shape[1] for x, li in zip(lefts, inks, strict=True))
    page = np.zeros((H, W), np.float32)
    labels = np.zeros((H, W), np.uint8)
    for t, x, li, code in zip(tops, lefts, inks, codes, strict=True):
        _stamp_labelled(page, labels, li.ink, t + y0, int(x), code)
    rows = [b + y0 for b in baselines]
    for i, label in printed.items():
        k = i + neighbours[0]
        ink_cols = np.flatnonzero(inks[k].ink.max(axis=0) > 0.1)
        right = int(lefts[k]) + (int(ink_cols[0]) if ink_cols.size else 0) - int(_u(rng, (0.6, 1.2)) * xh)
        _printed_label(page, labels, label, right, int(rows[k]), xh, i + 1)
        texts[i] = f"{label} {texts[i]}"
    if cfg.page_rotation_deg != (0.0, 0.0):
        page, labels, rows = _rotate(page, labels, rows, _u(rng, cfg.page_rotation_deg))
    ink, rows, crop = _crop_pad(page, rows, xh, rng, cfg)
    labels = _crop_like(labels, crop)
    if any(neighbours):
        ink, labels, rows = _cut_neighbours(ink, labels, rows, rng, cfg)
    if cfg.specks != (0.0, 0.0):
        _dust(ink, labels, xh, rng, cfg)
    image, moved = _photograph(ink, rows, xh, rng, cfg, labels)
    assert moved is not None
    neighbour = (moved == _TOP_NEIGHBOUR) | (moved == _BOTTOM_NEIGHBOUR)
    line_map = np.where(moved <= len(texts), moved, np.where(neighbour, NOT_A_LINE, 0)).astype(np.uint8)
    return Page(image=image, text="\n".join(texts), boxes=_label_boxes(moved, len(texts)), line_map=line_map)


def _stamp_labelled(page: np.ndarray, labels: np.ndarray, ink: np.ndarray, r: int, c: int, code: int) -> None:
    """:func:`_stamp` float ``ink`` onto ``page`` and mark the pixels where it is the strongest ink above
    :data:`_LABEL_COVERAGE` with ``code`` in ``labels`` (same shape as ``page``). ``r, c >= 0``."""
    h, wd = ink.shape
    region, lab = page[r : r + h, c : c + wd], labels[r : r + h, c : c + wd]
    mine = (ink > _LABEL_COVERAGE) & (ink > region)
    lab[mine] = code
    np.maximum(region, ink, out=region)


def _sample_labels(n: int, rng: np.random.Generator, cfg: RenderConfig) -> dict[int, str]:
    """Which of ``n`` lines get a printed label, and which label."""
    if cfg.p_printed_label <= 0:
        return {}
    return {i: LABELS[int(rng.integers(len(LABELS)))] for i in range(n) if rng.random() < cfg.p_printed_label}


_LABEL_FONT = cv2.FONT_HERSHEY_SIMPLEX
_LABEL_CAP = 0.95  # cap height of printed labels, in x-heights


def _label_scale(xh: float) -> tuple[float, int]:
    """Hershey font scale and stroke thickness of a printed label next to writing of x-height ``xh``."""
    return _LABEL_CAP * xh / 21.0, max(1, round(0.09 * xh))


def _printed_width(label: str, xh: float) -> int:
    scale, thick = _label_scale(xh)
    return int(cv2.getTextSize(label, _LABEL_FONT, scale, thick)[0][0])


def _printed_label(
    page: np.ndarray, labels: np.ndarray, label: str, right: int, baseline: int, xh: float, code: int
) -> None:
    """Draw ``label`` in a printed font ending at column ``right`` on row ``baseline``; its ink is part of
    line ``code``."""
    scale, thick = _label_scale(xh)
    layer = np.zeros(page.shape, np.uint8)
    left = max(0, right - _printed_width(label, xh))
    cv2.putText(layer, label, (left, baseline), _LABEL_FONT, scale, 255, thick, cv2.LINE_AA)
    _stamp_labelled(page, labels, layer.astype(np.float32) / 255.0, 0, 0, code)


def _rotate(
    page: np.ndarray, labels: np.ndarray, rows: list[float], degrees: float
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Rotate ink and labels ``[H, W]`` by ``degrees`` (counter-clockwise) on a canvas that holds them;
    ``rows`` (baselines, for ruled paper) move with the centre."""
    h, w = page.shape
    a = np.deg2rad(degrees)
    nw = int(abs(w * np.cos(a)) + abs(h * np.sin(a))) + 2
    nh = int(abs(h * np.cos(a)) + abs(w * np.sin(a))) + 2
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    matrix[:, 2] += ((nw - w) / 2, (nh - h) / 2)
    out = cv2.warpAffine(page, matrix, (nw, nh), flags=cv2.INTER_LINEAR)
    lab = cv2.warpAffine(labels, matrix, (nw, nh), flags=cv2.INTER_NEAREST)
    return out, lab, [r + (nh - h) / 2 for r in rows]


def _cut_neighbours(
    ink: np.ndarray, labels: np.ndarray, rows: list[float], rng: np.random.Generator, cfg: RenderConfig
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Cut the image through the neighbour lines above and below the text so that only
    ``cfg.partial_visible`` of each one's height stays, never into a line of the text."""
    text_rows = np.flatnonzero(((labels > 0) & (labels < _TOP_NEIGHBOUR)).any(axis=1))
    top, bottom = 0, ink.shape[0]
    for code in (_TOP_NEIGHBOUR, _BOTTOM_NEIGHBOUR):
        nb = np.flatnonzero((labels == code).any(axis=1))
        if nb.size == 0 or text_rows.size == 0:
            continue
        keep = int(_u(rng, cfg.partial_visible) * (nb[-1] + 1 - nb[0]))
        if code == _TOP_NEIGHBOUR:
            top = min(int(nb[-1]) + 1 - keep, int(text_rows[0]))
        else:
            bottom = max(int(nb[0]) + keep, int(text_rows[-1]) + 1)
    return ink[top:bottom].copy(), labels[top:bottom].copy(), [r - top for r in rows]


def _dust(
    ink: np.ndarray, labels: np.ndarray, xh: float, rng: np.random.Generator, cfg: RenderConfig
) -> None:
    """Specks of dust anywhere on the page ink ``[H, W]`` (in place); they belong to no line."""
    h, w = ink.shape
    n = int(_u(rng, cfg.specks) * h * w / (100 * xh * xh))
    for _ in range(n):
        radius = max(1, round(_u(rng, cfg.speck_size) * xh))
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        layer = np.zeros((2 * radius + 3, 2 * radius + 3), np.float32)
        cv2.circle(layer, (radius + 1, radius + 1), radius, _u(rng, (0.5, 1.0)), thickness=-1)
        r, c = centre[1] - radius - 1, centre[0] - radius - 1
        r0, c0 = max(r, 0), max(c, 0)
        region = ink[r0 : r + layer.shape[0], c0 : c + layer.shape[1]]
        part = layer[r0 - r : r0 - r + region.shape[0], c0 - c : c0 - c + region.shape[1]]
        labels[r0 : r0 + region.shape[0], c0 : c0 + region.shape[1]][part > region] = 0
        np.maximum(region, part, out=region)


def _label_boxes(labels: np.ndarray, n: int) -> tuple[Box, ...]:
    """Bounding box of each line code ``1..n`` of a label map ``[H, W]`` (``(0, 0, 0, 0)`` if it vanished)."""
    boxes = []
    for code in range(1, n + 1):
        mine = labels == code
        rows, cols = np.flatnonzero(mine.any(axis=1)), np.flatnonzero(mine.any(axis=0))
        if rows.size == 0:
            boxes.append((0, 0, 0, 0))
        else:
            boxes.append((int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1))
    return tuple(boxes)


#: Hard pages for the segmentation benchmark: each is one difficulty of real photos on the default renderer.
HARD_CASE_NAMES = ("skew", "wavy", "tight", "ruled", "partial", "specks", "labels")


def hard_case(name: str) -> RenderConfig:
    """The :class:`RenderConfig` of hard case ``name`` (one of :data:`HARD_CASE_NAMES`)."""
    base = RenderConfig()
    cases = {
        "skew": replace(base, page_rotation_deg=(-5.0, 5.0)),
        "wavy": replace(base, baseline_wave=(0.3, 0.6), baseline_wave_period=(8.0, 20.0)),
        "tight": replace(base, line_spacing=(1.75, 2.1), line_spacing_jitter=0.03),
        "ruled": replace(base, p_ruled=1.0, p_dark_background=0.0, ruled_contrast=(0.15, 0.4)),
        "partial": replace(base, p_partial_neighbours=1.0),
        "specks": replace(base, specks=(1.0, 4.0)),
        "labels": replace(base, p_printed_label=0.7),
    }
    if name not in cases:
        raise ValueError(f"unknown hard case {name!r}; expected one of {', '.join(HARD_CASE_NAMES)}")
    return cases[name]

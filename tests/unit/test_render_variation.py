"""Writers, not fonts: every character instance varies in shape, pens vary in width, letters can join."""

from __future__ import annotations

import numpy as np

from text_recognizer.data.synth.fonts import glyph, list_fonts
from text_recognizer.data.synth.render import RenderConfig, _join_letters, _vary_glyph, render_line


def _caveat_a(size: int = 60, thin: int = 0) -> np.ndarray:
    path = next(f.path for f in list_fonts() if f.family == "caveat")
    return glyph(path, size, "a", thin).mask


def test_no_variation_keeps_the_glyph_and_variation_changes_its_shape() -> None:
    mask = _caveat_a()
    rows, cols = np.flatnonzero(mask.max(1)), np.flatnonzero(mask.max(0))
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # FreeType leaves blank margins
    same, dx, dy = _vary_glyph(mask, np.zeros(4))
    assert abs(same.shape[0] - mask.shape[0]) <= 1 and abs(same.shape[1] - mask.shape[1]) <= 1
    assert abs(dx) <= 1 and abs(dy) <= 1
    shapes = [_vary_glyph(mask, np.array([0.1, -0.1, 0.15, 0.05]))[0] for _ in range(2)]
    assert shapes[0].shape != mask.shape or not np.array_equal(shapes[0], mask)
    wide, _, _ = _vary_glyph(mask, np.array([0.2, 0.0, 0.0, 0.0]))
    assert wide.shape[1] > mask.shape[1] * 1.1


def test_a_fine_pen_thins_the_strokes_but_keeps_the_letter_size() -> None:
    normal, thin = _caveat_a(), _caveat_a(thin=4)
    assert (thin > 128).sum() < 0.8 * (normal > 128).sum()
    assert abs(thin.shape[0] - normal.shape[0]) <= 3 and abs(thin.shape[1] - normal.shape[1]) <= 3


def test_joining_draws_a_stroke_between_two_letters() -> None:
    a = _caveat_a()
    canvas = np.zeros((100, 200), np.uint8)
    h, w = a.shape
    boxes = {0: (10, 10, a), 1: (10, 10 + w + 15, a)}
    canvas[10 : 10 + h, 10 : 10 + w] = a
    canvas[10 : 10 + h, 25 + w : 25 + 2 * w] = a
    gap = canvas[10 : 10 + h, 10 + w + 2 : 10 + w + 13].copy()
    assert gap.max() == 0
    _join_letters(canvas, "aa", boxes, np.array([False, True]), 2)
    assert canvas[10 : 10 + h, 10 + w + 2 : 10 + w + 13].max() > 128


def test_the_renderer_is_deterministic_and_varies_between_writers() -> None:
    cfg = RenderConfig()
    a = render_line("the same words", np.random.default_rng(5), cfg)
    b = render_line("the same words", np.random.default_rng(5), cfg)
    c = render_line("the same words", np.random.default_rng(6), cfg)
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)

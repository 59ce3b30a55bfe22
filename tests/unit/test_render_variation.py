"""Writers, not fonts: every character instance varies in shape, pens vary in width, letters can join."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from render_helpers import camera_off

from text_recognizer.data.base import Sample
from text_recognizer.data.folder import FolderSource, write_labels
from text_recognizer.data.modules import SourceSpec, build_source
from text_recognizer.data.synth.dataset import Restyled
from text_recognizer.data.synth.fonts import glyph, list_fonts, skeleton
from text_recognizer.data.synth.render import (
    RenderConfig,
    _join_letters,
    _vary_glyph,
    render_line,
    restyle_line,
)
from text_recognizer.images import ink_bbox


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


def _ink_box(mask: np.ndarray) -> tuple[int, int]:
    box = ink_bbox(mask, threshold=64)
    assert box is not None
    top, bottom, left, right = box
    return bottom - top, right - left


def _stroke_widths(mask: np.ndarray) -> np.ndarray:
    """Stroke width at each pixel of the centre lines of uint8 ``[h, w]`` ink."""
    ink = mask > 127
    return 2 * cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 5)[skeleton(ink)]


def test_a_fine_pen_thins_the_strokes_but_keeps_the_letter_size() -> None:
    normal, thin = _caveat_a(), _caveat_a(thin=4)
    assert (thin > 128).sum() < 0.8 * (normal > 128).sum()
    (h0, w0), (h1, w1) = _ink_box(normal), _ink_box(thin)
    assert abs(h1 - h0) <= 3 and abs(w1 - w0) <= 3


def test_a_fine_pen_draws_thick_and_hairline_strokes_one_width() -> None:
    path = next(f.path for f in list_fonts() if f.family == "great-vibes")  # a pointed-pen script
    own, pen = _stroke_widths(glyph(path, 90, "a").mask), _stroke_widths(glyph(path, 90, "a", 3).mask)
    assert np.percentile(own, 90) > 1.5 * np.percentile(own, 10)
    assert np.percentile(pen, 90) <= 1.2 * np.percentile(pen, 10)
    assert np.median(pen) < np.median(own)


def test_the_skeleton_is_one_pixel_wide_and_keeps_the_strokes_connected() -> None:
    ring = np.zeros((40, 40), np.uint8)
    cv2.circle(ring, (20, 20), 12, 1, thickness=5)
    centre = skeleton(ring.astype(bool))
    assert centre.sum() < 0.3 * ring.sum()
    assert (centre & ~ring.astype(bool)).sum() == 0
    n_parts, _ = cv2.connectedComponents(centre.astype(np.uint8))
    assert n_parts - 1 == 1  # one ring, not broken
    holes, _ = cv2.connectedComponents((~centre).astype(np.uint8), connectivity=4)
    assert holes - 1 == 2  # the inside and the outside: the ring is still closed


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


#: the camera stage off, so that strokes can be told from paper by a threshold
PLAIN_CAMERA = camera_off()


def _ink_extent(image: np.ndarray) -> tuple[int, int]:
    """Height and width of the strokes of a dark-on-light uint8 ``[H, W]`` line."""
    strokes = image < np.median(image) - 0.3 * 255
    rows, cols = np.flatnonzero(strokes.any(axis=1)), np.flatnonzero(strokes.any(axis=0))
    assert rows.size and cols.size
    return int(rows[-1] - rows[0]), int(cols[-1] - cols[0])


def test_restyling_a_real_line_varies_it_and_keeps_its_text_whole() -> None:
    line = render_line("the quick brown fox jumps", np.random.default_rng(3), PLAIN_CAMERA)
    h, w = _ink_extent(line)
    again = [restyle_line(line, np.random.default_rng(i), PLAIN_CAMERA) for i in range(4)]
    assert np.array_equal(again[0], restyle_line(line, np.random.default_rng(0), PLAIN_CAMERA))
    assert len({a.tobytes() for a in [line, *again]}) == 5
    for a in again:  # no ink cut away, none invented: the strokes span about as far
        ah, aw = _ink_extent(a)
        assert 0.7 * w < aw < 1.4 * w and 0.6 * h < ah < 1.6 * h, (w, h, aw, ah)
    shot = restyle_line(line, np.random.default_rng(0))  # the camera stage too: a new photo
    assert shot.dtype == np.uint8 and shot.ndim == 2
    blank = np.full((30, 200), 255, np.uint8)
    assert restyle_line(blank, np.random.default_rng(0)) is blank


def test_restyled_source_draws_new_versions_of_each_line(tmp_path: Path) -> None:
    lines = [
        Sample(render_line(t, np.random.default_rng(i)), t) for i, t in enumerate(["one line", "another"])
    ]
    as_is = Restyled(lines, share=0.0, variants=10)
    assert len(as_is) == 20
    assert all(as_is[i].image is lines[i % 2].image for i in range(20))
    fresh = Restyled(lines, share=1.0, seed=5, variants=10)
    assert [fresh[i].text for i in range(4)] == ["one line", "another", "one line", "another"]
    assert not np.array_equal(fresh[0].image, fresh[2].image)  # two draws of line 0
    assert np.array_equal(fresh[0].image, Restyled(lines, share=1.0, seed=5)[0].image)
    Image.fromarray(lines[0].image).save(tmp_path / "a.png")
    write_labels(tmp_path, [("a.png", "one line")])
    spec = SourceSpec(name="folder", path=str(tmp_path), restyle=0.5)
    assert isinstance(build_source(spec, "line", "train", 100, 0), Restyled)
    assert isinstance(
        build_source(SourceSpec(name="folder", path=str(tmp_path)), "line", "train", 100, 0), FolderSource
    )

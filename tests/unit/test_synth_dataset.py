"""SynthSource and the renderer: determinism, shapes, polarity, text."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
from render_helpers import camera_off

from text_recognizer.data.synth.dataset import SynthSource, cut_page_line
from text_recognizer.data.synth.render import RenderConfig, render_line, render_page, render_paragraph
from text_recognizer.images import normalize_ink, prepare_line
from text_recognizer.vocab import CHARACTERS


def test_same_seed_split_and_index_give_the_same_sample() -> None:
    a = SynthSource("line", "val", size=10, seed=7)
    b = SynthSource("line", "val", size=10, seed=7)
    for i in (0, 3, 9):
        sa, sb = a[i], b[i]
        assert sa.text == sb.text
        assert np.array_equal(sa.image, sb.image)
    assert a[-1].text == a[9].text


def test_order_of_access_does_not_matter_and_source_pickles() -> None:
    src = SynthSource("paragraph", "test", size=4, seed=1)
    forward = [src[i].text for i in range(4)]
    backward = [src[i].text for i in reversed(range(4))][::-1]
    assert forward == backward
    clone = pickle.loads(pickle.dumps(src))
    assert np.array_equal(clone[2].image, src[2].image)


def test_seeds_and_splits_give_different_samples() -> None:
    texts = {SynthSource("line", split, 1, seed)[0].text for split in ("train", "val") for seed in (0, 1)}
    assert len(texts) == 4


def test_line_samples_are_uint8_images_with_vocabulary_text() -> None:
    src = SynthSource("line", "train", size=12, seed=0)
    for i in range(len(src)):
        s = src[i]
        assert s.image.dtype == np.uint8 and s.image.ndim == 2
        h, w = s.image.shape
        assert 16 <= h <= 200 and w > h
        assert set(s.text) <= set(CHARACTERS) - {"\n"}
        assert 25 <= len(s.text) <= 60


def test_paragraph_samples_join_3_to_12_lines() -> None:
    src = SynthSource("paragraph", "val", size=4, seed=0)
    for i in range(len(src)):
        s = src[i]
        assert 3 <= len(s.text.split("\n")) <= 12
        assert s.image.dtype == np.uint8 and s.image.ndim == 2
        assert s.image.shape[0] > 60


def test_both_polarities_occur() -> None:
    src = SynthSource("line", "train", size=30, seed=0)
    medians = [float(np.median(src[i].image)) for i in range(len(src))]
    assert sum(m < 100 for m in medians) >= 5  # light ink on dark
    assert sum(m > 150 for m in medians) >= 5  # dark ink on light


def test_rendered_line_has_ink_and_prepares_for_the_model() -> None:
    src = SynthSource("line", "train", size=5, seed=3)
    for i in range(len(src)):
        ink = normalize_ink(src[i].image)
        assert (ink > 0.5).mean() > 0.01  # strokes are there
        x = prepare_line(src[i].image, height=32, max_width=1024)
        assert x.shape[0] == 32 and x.dtype == np.float32


CLEAN = camera_off()


def test_clean_render_has_strokes_proportional_to_the_text() -> None:
    for seed in range(6):
        short = render_line("a few words", np.random.default_rng(seed), CLEAN)
        long = render_line(
            "a few words, and then many more words after them", np.random.default_rng(seed), CLEAN
        )
        for img in (short, long):
            paper = float(np.median(img))
            strokes = img < paper - 0.3 * 255  # ink contrast is at least 0.4
            assert 0.01 < strokes.mean() < 0.5, (seed, strokes.mean())  # a thin pen's wide hand: ~1.5 %
            rows = np.flatnonzero(strokes.any(axis=1))
            assert rows[0] > 0 and rows[-1] < img.shape[0] - 1  # margins: nothing cut at the edges
        assert (long < np.median(long) - 76).sum() > 2.5 * (short < np.median(short) - 76).sum()


def test_perspective_never_pushes_text_out_of_the_image() -> None:
    tilted = replace(CLEAN, p_perspective=1.0, perspective=(0.05, 0.05), margin=(0.1, 0.1))
    for seed in range(8):
        img = render_line("edge to edge text of a line", np.random.default_rng(seed), tilted)
        strokes = img < np.median(img) - 0.3 * 255
        cols = np.flatnonzero(strokes.any(axis=0))
        rows = np.flatnonzero(strokes.any(axis=1))
        assert cols[0] > 0 and cols[-1] < img.shape[1] - 1, seed
        assert rows[0] > 0 and rows[-1] < img.shape[0] - 1, seed


def test_renderer_is_driven_only_by_the_generator() -> None:
    cfg = RenderConfig()
    a = render_line("The quick brown fox, 1234!", np.random.default_rng(5), cfg)
    b = render_line("The quick brown fox, 1234!", np.random.default_rng(5), cfg)
    assert np.array_equal(a, b)
    p = render_paragraph(["first line here", "and the second one"], np.random.default_rng(5), cfg)
    assert p.ndim == 2 and p.shape[0] > a.shape[0] // 2
    with pytest.raises(ValueError, match="at least one line"):
        render_paragraph([], np.random.default_rng(0), cfg)


def test_config_knobs_take_effect() -> None:
    light_only = RenderConfig(p_dark_background=0.0)
    for seed in range(5):
        img = render_line("some handwritten words", np.random.default_rng(seed), light_only)
        assert np.median(img) > 100
    big = RenderConfig(x_height_px=(30.0, 30.0), margin=(0.5, 0.5))
    small = RenderConfig(x_height_px=(8.0, 8.0), margin=(0.5, 0.5))
    h_big = render_line("some handwritten words", np.random.default_rng(0), big).shape[0]
    h_small = render_line("some handwritten words", np.random.default_rng(0), small).shape[0]
    assert h_big > 2 * h_small


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        SynthSource("word")
    with pytest.raises(ValueError, match="unknown split"):
        SynthSource("line", "dev")
    with pytest.raises(IndexError):
        SynthSource("line", size=3)[3]


def test_page_lines_are_lines_cut_from_a_page_by_the_line_finder() -> None:
    src = SynthSource("page_line", "train", size=6, seed=3)
    for i in range(len(src)):
        s = src[i]
        assert s.image.dtype == np.uint8 and s.image.ndim == 2
        assert "\n" not in s.text and 10 <= len(s.text) <= 60
        assert np.array_equal(s.image, src[i].image)  # deterministic


def test_cut_page_line_pairs_a_clean_cut_with_its_text() -> None:
    rng = np.random.default_rng(5)
    texts = ["the first line of three", "and the second one here", "with a third below it"]
    page = render_page(texts, rng, camera_off())
    sample = cut_page_line(page, np.random.default_rng(0))
    assert sample is not None and sample.text in texts
    # the cut holds that line's ink only: about as tall as one line, not three
    rows = np.flatnonzero((normalize_ink(sample.image) > 0.3).any(axis=1))
    assert rows[-1] - rows[0] < 0.6 * page.image.shape[0]
    # a page whose truth names no line (nothing can be paired) gives no sample
    blank = replace(page, line_map=np.zeros_like(page.line_map))
    assert cut_page_line(blank, np.random.default_rng(0)) is None

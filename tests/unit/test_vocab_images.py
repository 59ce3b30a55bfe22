"""The shared vocabulary and the image normalisation every input goes through."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from text_recognizer.images import (
    CORE_MIN_SHARE,
    MAX_ASPECT,
    ImageError,
    _block_means,
    _median_u8,
    core_rows,
    crop_window,
    load_gray,
    normalize_core,
    normalize_ink,
    page_boxes,
    page_lines,
    prepare_line,
    reduce_factor,
    segment_lines,
    shape_error,
)
from text_recognizer.vocab import Vocabulary, default_vocab


def test_vocab_round_trip_and_specials() -> None:
    v = default_vocab()
    text = 'Mr. Brown, 42% "warm-hearted"\nled Labour\'s attack;'
    ids = v.encode(text)
    assert ids[0] == v.bos_id and ids[-1] == v.eos_id
    assert v.decode(ids[1:]) == text
    assert v.pad_id == 0 and len(v) == 4 + 1 + 95
    assert v.decode(v.encode("a\u00e9b", add_special=False)) == "ab"  # unknown characters are dropped
    assert Vocabulary.normalize("\u201cquote\u201d \u2014 it\u2019s") == '"quote" - it\'s'
    assert Vocabulary.from_list(v.to_list()) == v
    with pytest.raises(ValueError):
        Vocabulary.from_list(["a", "b"])


def _page(lines: list[str], dark_ink: bool = True, size: tuple[int, int] = (420, 200)) -> np.ndarray:
    img = Image.new("L", size, 235 if dark_ink else 20)
    d = ImageDraw.Draw(img)
    for i, t in enumerate(lines):
        d.text((20, 20 + 50 * i), t, fill=30 if dark_ink else 225, font_size=28)
    return np.asarray(img)


def test_normalize_ink_is_polarity_invariant() -> None:
    dark, light = _page(["hello there"], True), _page(["hello there"], False)
    a, b = normalize_ink(dark), normalize_ink(light)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    # ink is bright in both, background dark, and the two agree closely
    assert a.mean() < 0.2 and b.mean() < 0.2
    assert np.abs(a - b).mean() < 0.05


def test_normalize_ink_flattens_uneven_lighting() -> None:
    page = _page(["shadow over text"]).astype(np.float32)
    page *= np.linspace(0.45, 1.0, page.shape[1])[None, :]  # a phone-photo shadow across the page
    ink = normalize_ink(page.astype(np.uint8))
    background = ink[150:, :]  # no text there
    assert background.max() < 0.3


def test_segment_lines_finds_each_line() -> None:
    page = _page(["first line of text", "second line here", "third one"], size=(420, 190))
    boxes = segment_lines(normalize_ink(page))
    assert len(boxes) == 3
    assert all(b.bottom > b.top for b in boxes)
    assert [b.top for b in boxes] == sorted(b.top for b in boxes)
    assert segment_lines(np.zeros((50, 80), np.float32)) == []


def test_a_page_over_the_work_pixels_is_read_reduced_with_boxes_in_its_own_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = _page(["first line of text", "second line here", "third one"], size=(420, 190))
    boxes, crops, spans = page_lines(page, 32, 512)
    big = np.kron(page, np.ones((4, 4), np.uint8))  # the same page at 4 x the resolution
    monkeypatch.setattr("text_recognizer.images.WORK_PIXELS", page.size)
    assert reduce_factor(big.shape[1], big.shape[0]) == 4
    big_boxes, big_crops, big_spans = page_lines(big, 32, 512)
    assert [(b.top // 4, b.bottom // 4, b.left // 4, b.right // 4) for b in big_boxes] == [
        (b.top, b.bottom, b.left, b.right) for b in boxes
    ]
    assert all(b.bottom <= big.shape[0] and b.right <= big.shape[1] for b in big_boxes)
    assert [c.shape for c in big_crops] == [c.shape for c in crops]
    assert page_boxes(big) == big_boxes
    assert big_spans == [(4 * x0, 4 * x1) for x0, x1 in spans]


def test_reduce_factor_is_the_least_that_fits() -> None:
    assert reduce_factor(100, 100, work_pixels=10_000) == 1
    assert reduce_factor(101, 100, work_pixels=10_000) == 2
    assert reduce_factor(6300, 6300, work_pixels=8_000_000) == 3  # 2100 x 2100


@pytest.mark.parametrize(
    ("size", "refused"),
    [
        ((2, 20_000_000), True),
        ((1, 50), True),
        ((MAX_ASPECT * 10, 10), False),
        ((MAX_ASPECT * 10 + 1, 10), True),
    ],
)
def test_shape_error_refuses_shapes_no_handwriting_has(size: tuple[int, int], refused: bool) -> None:
    assert (shape_error(*size) is not None) == refused
    assert (shape_error(size[1], size[0]) is not None) == refused


def test_prepare_line_shape() -> None:
    line = prepare_line(_page(["one line"], size=(300, 60)), height=32, max_width=128)
    assert line.shape[0] == 32 and line.shape[1] <= 128


def _tall_writer(core: int, above: int, below: int) -> np.ndarray:
    """A line crop ``[above + core + below, 60]``: a full core band, one ascender and one descender."""
    ink = np.zeros((above + core + below, 60), np.float32)
    ink[above : above + core, 5:55] = 1.0
    ink[:above, 10] = 1.0
    ink[above + core :, 40] = 1.0
    return ink


def test_normalize_core_squeezes_tall_ascenders_and_deep_descenders() -> None:
    ink = _tall_writer(core=6, above=14, below=12)  # core 6 of 32 rows: 0.19
    assert core_rows(ink) == (14, 20)
    out = normalize_core(ink)
    a, b = core_rows(out) or (0, 0)
    assert out.shape[1] == 60 and b - a == 6
    assert abs((b - a) / out.shape[0] - CORE_MIN_SHARE) < 0.04
    # both zones squeezed by the same factor, strokes still there
    assert a / (out.shape[0] - b) == pytest.approx(14 / 12, rel=0.2)
    assert out[:a, 10].min() > 0.5 and out[b:, 40].min() > 0.5


def test_normalize_core_leaves_ordinary_lines_and_blanks() -> None:
    ink = _tall_writer(core=12, above=10, below=10)  # 0.375
    assert normalize_core(ink) is ink
    blank = np.zeros((20, 30), np.float32)
    assert core_rows(blank) is None and normalize_core(blank) is blank


def test_crop_window_pads_a_tight_crop_with_background() -> None:
    ink = np.zeros((25, 60), np.float32)
    ink[:, 2:] = 1.0  # ink to the top, bottom and right edges, 2 columns of paper on the left
    out, c0, c1 = crop_window(ink)
    assert out.shape == (25, 60) and (c0, c1) == (0, 60)
    out, c0, c1 = crop_window(ink, pad=True)
    m = round(0.08 * 25)
    assert out.shape == (25 + 2 * m, 58 + 2 * m) and (c0, c1) == (2 - m, 60 + m)
    assert out[:m].max() == 0 and out[-m:].max() == 0 and out[:, :m].max() == 0 and out[:, -m:].max() == 0


def test_a_lone_line_gets_a_margin_and_page_lines_do_not() -> None:
    (box,), (lone,), ((x0, x1),) = page_lines(_page(["one line alone"], size=(300, 60)), 32, 512)
    assert x0 < box.left and x1 > box.right  # the crop's width spans the margin too
    assert lone[:, :2].max() < 0.05 and lone[:, -2:].max() < 0.05 and lone[:2].max() < 0.05
    _, crops, _ = page_lines(_page(["first line here", "second line here"]), 32, 512)
    assert len(crops) == 2 and all(c[:, :2].max() > 0.2 or c[:2].max() > 0.2 for c in crops)


def test_load_gray_handles_modes_and_exif() -> None:
    rgba = Image.new("RGBA", (40, 20), (0, 0, 0, 0))  # fully transparent: composited over white
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    assert load_gray(buf.getvalue()).min() == 255
    img = Image.new("RGB", (60, 20), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    assert load_gray(buf.getvalue()).shape == (60, 20)


def test_load_gray_errors_name_the_source(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError, match=r"broken\.png"):
        load_gray(bad)
    with pytest.raises(ImageError, match="100x100 = 10000 pixels exceeds the limit of 1000"):
        load_gray(Image.new("L", (100, 100)), max_pixels=1000)


@pytest.mark.parametrize("f", [1, 2, 3, 5, 7, 8, 9])
def test_block_means_are_numpys_mean_of_each_block_to_the_bit(f: int) -> None:
    rng = np.random.default_rng(f)
    for dtype in (np.float32, np.float64):
        a = (rng.random((13 * f, 2 * 17 * f)) * rng.random((13 * f, 2 * 17 * f))).astype(dtype)
        for x in (a, a[:, ::2]):  # contiguous and a strided view
            expected = np.ascontiguousarray(x).reshape(13, f, 17 * (2 if x is a else 1), f).mean(axis=(1, 3))
            got = _block_means(x, f)
            assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_median_of_a_uint8_image_is_numpys() -> None:
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (1, 2), (3, 5), (4, 6), (31, 17), (64, 80)]:
        for a in (rng.integers(0, 256, (h, w)), rng.integers(125, 131, (h, w)), rng.choice([0, 255], (h, w))):
            gray = a.astype(np.uint8)
            assert _median_u8(gray) == float(np.median(gray))

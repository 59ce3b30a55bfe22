"""Confidence map, word boxes from the CTC alignment, blank images: no model needed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from text_recognizer.images import LineBox
from text_recognizer.inference.decoders import Decoded
from text_recognizer.inference.manifest import ArtifactError, Calibration, Manifest, ModelPart, Preprocessing
from text_recognizer.inference.predictor import PostProcessor
from text_recognizer.staging.blanks import BLANK_KINDS, blank_images
from text_recognizer.staging.confidence import calibration_error, isotonic_fit, share_correct
from text_recognizer.vocab import Vocabulary


def _manifest(calibration: Calibration | None = None) -> Manifest:
    return Manifest(
        name="t",
        version="t-1",
        created="",
        vocab=("<pad>", "<s>", "</s>", "<unk>", " ", "a", "b"),
        preprocessing=Preprocessing(input_height=32, max_width=512),
        model=ModelPart(d_model=8, n_heads=2, n_layers=1, max_len=8, pad_id=0, bos_id=1, eos_id=2),
        calibration=calibration,
    )


def test_isotonic_fit_is_monotone_and_pools_violations() -> None:
    rng = np.random.default_rng(0)
    x = rng.random(500)
    y = np.clip(x + rng.normal(0, 0.3, 500), 0, 1)
    xs, ys = isotonic_fit(x.tolist(), y.tolist())
    assert xs == sorted(xs) and ys == sorted(ys)
    assert isotonic_fit([0.1, 0.2, 0.3], [1.0, 0.0, 1.0]) == ([0.15, 0.3], [0.5, 1.0])
    cal = Calibration(raw=tuple(xs), share=tuple(ys))
    mapped = [cal(s) for s in np.linspace(-0.5, 1.5, 101)]
    assert mapped == sorted(mapped) and mapped[0] == ys[0] and mapped[-1] == ys[-1]
    assert calibration_error([cal(s) for s in x], y) < calibration_error(x, y)


def test_calibration_interpolates_between_its_points() -> None:
    cal = Calibration(raw=(0.2, 0.6), share=(0.0, 0.8))
    assert cal(0.4) == pytest.approx(0.4)
    assert cal(0.1) == 0.0 and cal(0.9) == 0.8


def test_calibration_error_and_share_correct() -> None:
    assert calibration_error([0.9, 0.9], [1.0, 0.8]) == pytest.approx(0.0)
    assert calibration_error([0.9, 0.1], [0.0, 1.0]) == pytest.approx(0.9)
    assert share_correct("abcd", "abxd") == 0.75
    assert share_correct("ab", "xxxxxx") == 0.0
    assert share_correct("", "") == 1.0 and share_correct("", "e 3") == 0.0


def test_manifest_keeps_the_calibration_and_reads_old_manifests() -> None:
    cal = Calibration(raw=(0.3, 0.9), share=(0.1, 0.95), decoder="ctc_lm", ece_raw=0.2, ece_calibrated=0.02)
    d = json.loads(json.dumps(_manifest(cal).to_dict()))
    assert Manifest.from_dict(d).calibration == cal
    d.pop("calibration")
    assert Manifest.from_dict(d).calibration is None  # staged before calibration: raw scores
    d["calibration"] = {"raw": [0.5, 0.4], "share": [0.1, 0.2]}
    with pytest.raises(ArtifactError, match="non-decreasing"):
        Manifest.from_dict(d)


def test_old_artifact_manifest_loads_without_calibration() -> None:
    shipped = Path(__file__).resolve().parents[2] / "artifacts" / "line-default" / "manifest.json"
    if not shipped.exists():
        pytest.skip("no shipped artifact")
    d = json.loads(shipped.read_text())
    d.pop("calibration", None)
    assert Manifest.from_dict(d).calibration is None


VOCAB = Vocabulary.from_list(["<pad>", "<s>", "</s>", "<unk>", " ", "a", "b"])


def test_word_boxes_follow_the_alignment() -> None:
    """ "ab a" at crop columns 8.., in a line box at x 100..300 of a crop 100 wide (scale 2)."""
    ids = [5, 6, 4, 5]
    spans = [(8, 12), (16, 20), (28, 32), (40, 44)]
    line = LineBox(top=50, bottom=80, left=100, right=300)
    result = PostProcessor(VOCAB)(Decoded(ids, [0.9, 0.8, 0.99, 0.5], spans), line, crop_width=100)
    assert result.text == "ab a"
    assert result.box == (100, 50, 300, 80)  # [x_min, y_min, x_max, y_max]
    assert [w.text for w in result.words] == ["ab", "a"]
    boxes = [w.box for w in result.words]
    assert all(b is not None for b in boxes)
    # median pitch 12 columns: each word widened by 6 columns a side, then x 2 into the line box
    assert boxes == [(104, 50, 152, 80), (168, 50, 200, 80)]
    assert result.words[1].confidence == pytest.approx(0.5)
    assert result.words[0].confidence == pytest.approx(np.sqrt(0.9 * 0.8))


def test_word_boxes_map_through_the_span_of_a_padded_crop() -> None:
    """The same alignment, the crop now spanning x 90..290 (a lone line's margin of 10 on the left)."""
    ids = [5, 6, 4, 5]
    spans = [(8, 12), (16, 20), (28, 32), (40, 44)]
    line = LineBox(top=50, bottom=80, left=100, right=300)
    decoded = Decoded(ids, [0.9, 0.8, 0.99, 0.5], spans)
    result = PostProcessor(VOCAB)(decoded, line, crop_width=100, span=(90.0, 290.0))
    assert [w.box for w in result.words] == [(100, 50, 142, 80), (158, 50, 190, 80)]


def test_word_boxes_stay_in_the_line_box_and_in_order() -> None:
    rng = np.random.default_rng(3)
    line = LineBox(top=10, bottom=40, left=7, right=220)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        ids = rng.choice([4, 5, 6], n).tolist()
        starts = np.sort(rng.choice(40, n, replace=False)) * 4
        spans = [(int(s), int(s) + 4) for s in starts]
        r = PostProcessor(VOCAB)(Decoded(ids, [0.9] * n, spans), line, crop_width=160)
        boxes = [w.box for w in r.words]
        assert all(b is not None for b in boxes)
        for x0, y0, x1, y1 in boxes:  # type: ignore[misc]
            assert line.left <= x0 < x1 <= line.right and (y0, y1) == (line.top, line.bottom)
        assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)  # type: ignore[index]


def test_attention_words_have_no_box_and_calibration_applies() -> None:
    cal = Calibration(raw=(0.0, 1.0), share=(0.0, 0.5))
    post = PostProcessor(VOCAB, calibration=cal)
    r = post(Decoded([5, 4, 6], [0.8, 0.8, 0.8, 0.9]), LineBox(0, 10, 0, 50), crop_width=40)
    assert [w.box for w in r.words] == [None, None]
    assert r.confidence == pytest.approx(0.5 * np.exp(np.log([0.8, 0.8, 0.8, 0.9]).mean()))
    assert replace(post, calibration=None)(Decoded([], []), None).confidence == 0.0


def test_blank_images_are_seeded_and_of_every_kind() -> None:
    a, b = blank_images(len(BLANK_KINDS), seed=1), blank_images(len(BLANK_KINDS), seed=1)
    assert all(
        x.dtype == np.uint8 and x.ndim == 2 and np.array_equal(x, y) for x, y in zip(a, b, strict=True)
    )
    assert not np.array_equal(a[0], blank_images(1, seed=2)[0])

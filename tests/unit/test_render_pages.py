"""Synthetic pages know where their lines are: the boxes stay on each line's ink through every transform."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from render_helpers import camera_off

from text_recognizer.data.synth.command import write_set
from text_recognizer.data.synth.dataset import SynthSource
from text_recognizer.data.synth.render import (
    HARD_CASE_NAMES,
    RenderConfig,
    hard_case,
    render_page,
    render_paragraph,
)

#: brightness of ink coverage 0.3 on paper 1.0 with ink contrast 0.8
INK = 1.0 - 0.8 * 0.3
LINES = ["first line of the page", "a second, longer line of writing", "third", "and the last one here"]


def _crisp(cfg: RenderConfig) -> RenderConfig:
    """``cfg`` photographed without blur, noise or lighting (so ink is where the threshold sees it), with a
    perspective warp always on: the boxes must follow it."""
    return camera_off(cfg, paper_level=(1.0, 1.0), p_perspective=1.0, perspective=(0.03, 0.04))


@pytest.mark.parametrize("case", HARD_CASE_NAMES)
def test_boxes_are_tight_around_each_lines_ink(case: str) -> None:
    for seed in range(3):
        page = render_page(LINES, np.random.default_rng(seed), _crisp(hard_case(case)))
        ink = page.image < 255 * INK  # the boxes hold the pixels of coverage above 0.35
        assert len(page.boxes) == len(LINES) == len(page.text.split("\n"))
        covered = np.zeros_like(ink)
        for top, bottom, left, right in page.boxes:
            assert 0 <= top < bottom <= ink.shape[0] and 0 <= left < right <= ink.shape[1], (case, seed)
            inside = ink[top:bottom, left:right]
            # each edge of the box touches ink (within 2 pixels): the box is not loose
            assert inside[:2].any() and inside[-2:].any(), (case, seed, "rows")
            assert inside[:, :2].any() and inside[:, -2:].any(), (case, seed, "columns")
            covered[top:bottom, left:right] = True
        # every ink pixel of the text is in some box; only dust and cut neighbour lines may lie outside
        outside = float((ink & ~covered).sum()) / float(ink.sum())
        # two neighbours cut to at most 0.4 of their height, each a whole corpus line beside four short ones
        # (dust: specks per page area, so a sparse wide hand has more of it beside its ink)
        limit = 0.3 if case == "partial" else 0.05 if case == "specks" else 0.03
        assert outside < limit, (case, seed, outside)
        tops = [b[0] for b in page.boxes]
        assert tops == sorted(tops)


def test_rotated_boxes_follow_the_rotation() -> None:
    # only the page turns: the lines' own tilt (the same draws in both) is off in both
    tilted = replace(hard_case("skew"), page_rotation_deg=(5.0, 5.0), rotation_deg=(0.0, 0.0))
    flat = replace(hard_case("skew"), page_rotation_deg=(0.0, 0.0), rotation_deg=(0.0, 0.0))
    long_line = ["a long line of handwriting that runs right across the page"] * 3
    h_tilted = render_page(long_line, np.random.default_rng(0), tilted).boxes[0]
    h_flat = render_page(long_line, np.random.default_rng(0), flat).boxes[0]
    width = h_flat[3] - h_flat[2]
    # a line of width w tilted by 5 degrees is about w * tan(5 deg) taller
    grown = (h_tilted[1] - h_tilted[0]) - (h_flat[1] - h_flat[0])
    assert 0.6 * width * np.tan(np.deg2rad(5)) < grown < 1.4 * width * np.tan(np.deg2rad(5))


def test_partial_neighbours_are_cut_and_not_lines() -> None:
    cfg = _crisp(hard_case("partial"))
    plain = replace(cfg, p_partial_neighbours=0.0)
    for seed in range(3):
        page = render_page(LINES, np.random.default_rng(seed), cfg)
        ink = page.image < 255 * INK
        first, last = page.boxes[0], page.boxes[-1]
        assert ink[: first[0]].any() and ink[last[1] :].any(), seed  # cut ink above and below the text
        assert page.text == "\n".join(LINES)
    assert render_page(LINES, np.random.default_rng(0), plain).text == "\n".join(LINES)


def test_printed_labels_are_part_of_their_line() -> None:
    page = render_page(
        LINES, np.random.default_rng(1), _crisp(replace(hard_case("labels"), p_printed_label=1.0))
    )
    for line, text in zip(LINES, page.text.split("\n"), strict=True):
        assert text.endswith(line) and text.split(" ")[0].endswith((":", "."))


def test_default_pages_are_unchanged_by_box_tracking() -> None:
    cfg = RenderConfig()
    a = render_paragraph(LINES, np.random.default_rng(3), cfg)
    page = render_page(LINES, np.random.default_rng(3), cfg)
    assert np.array_equal(a, page.image) and page.text == "\n".join(LINES)


def test_synth_set_writes_line_boxes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    write_set(tmp_path, SynthSource(kind="paragraph", split="test", size=2, seed=0))
    records = [json.loads(r) for r in (tmp_path / "labels.jsonl").read_text().splitlines()]
    for rec in records:
        assert len(rec["lines"]) == len(rec["text"].split("\n"))
        assert all(len(box) == 4 and box[0] < box[1] and box[2] < box[3] for box in rec["lines"])
    write_set(tmp_path / "lines", SynthSource(kind="line", split="test", size=1, seed=0))
    assert "lines" not in json.loads((tmp_path / "lines" / "labels.jsonl").read_text())

"""CTC prefix beam search: matches an exhaustive search, handles repeats, follows the language model."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from text_recognizer.inference.beam_search import BeamConfig, _frame_candidates, ctc_beam_search, log_softmax
from text_recognizer.inference.char_lm import CharNgramLM

BLANK = 0
CHARS = ["\x00", "a", "b", "c"]
PLAIN = BeamConfig(alpha=0.0, beta=0.0, beam=64, prune=-1e9, max_candidates=4, beam_threshold=1e9)


def _collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    out = []
    prev = None
    for k in path:
        if k != BLANK and k != prev:
            out.append(k)
        prev = k
    return tuple(out)


def _exhaustive(log_probs: np.ndarray) -> tuple[int, ...]:
    """The labelling with the highest total probability over all of its CTC paths."""
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(log_probs.shape[1]), repeat=log_probs.shape[0]):
        p = math.exp(sum(log_probs[t, k] for t, k in enumerate(path)))
        key = _collapse(path)
        totals[key] = totals.get(key, 0.0) + p
    return max(totals, key=lambda k: totals[k])


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_finds_the_most_probable_labelling(seed: int) -> None:
    rng = np.random.default_rng(seed)
    log_probs = log_softmax(rng.normal(0, 2, (5, 4)))
    assert tuple(ctc_beam_search(log_probs, CHARS, BLANK, None, PLAIN)) == _exhaustive(log_probs)


def _frames(*best: int, p: float = 0.97) -> np.ndarray:
    rows = np.full((len(best), 4), (1 - p) / 3)
    rows[np.arange(len(best)), best] = p
    return np.log(rows)


def test_repeats_need_a_blank_between_them() -> None:
    assert ctc_beam_search(_frames(1, 1, 2), CHARS, BLANK, None, PLAIN) == [1, 2]
    assert ctc_beam_search(_frames(1, 0, 1, 2), CHARS, BLANK, None, PLAIN) == [1, 1, 2]


def test_the_language_model_settles_what_the_image_leaves_open() -> None:
    # frame 2 is a coin toss between "a" and "b"; the language model has only ever seen "cbc"
    log_probs = _frames(3, 0, 1, 0, 3)
    log_probs[2] = np.log([0.02, 0.49, 0.47, 0.02])
    lm = CharNgramLM.build(["cbc cbc cbc cbc"], order=3, min_count=1)
    without = ctc_beam_search(log_probs, CHARS, BLANK, None, PLAIN)
    with_lm = ctc_beam_search(log_probs, CHARS, BLANK, lm, BeamConfig(alpha=1.0, beta=0.0))
    assert without == [3, 1, 3]
    assert with_lm == [3, 2, 3]


@pytest.mark.parametrize("seed", range(3))
def test_one_candidate_per_frame_is_the_greedy_path(seed: int) -> None:
    # an unsure model (near-uniform frames) over 99 symbols: only the top one is tried at each frame
    log_probs = log_softmax(np.random.default_rng(seed).normal(0, 0.1, (64, 99)))
    chars = ["\x00"] + [chr(32 + i) for i in range(98)]
    greedy = _collapse(tuple(log_probs.argmax(1).tolist()))
    cfg = BeamConfig(alpha=0.0, beta=0.0, beam=8, max_candidates=1)
    assert tuple(ctc_beam_search(log_probs, chars, BLANK, None, cfg)) == greedy


def test_unsure_lines_keep_the_greedy_reading() -> None:
    from text_recognizer.inference.decoders import LineDecoder, ctc_greedy

    # a language model that loves "b": a sure line follows it, an unsure one (a speck) does not
    lm = CharNgramLM.build(["bbbb bbbb bbbb"], order=2, min_count=1)
    decoder = LineDecoder("ctc_lm", lm=lm, beam=BeamConfig(alpha=5.0, beta=0.0), chars=tuple(CHARS))
    sure = np.log(np.array([[0.02, 0.9, 0.06, 0.02], [0.9, 0.04, 0.04, 0.02]]))
    unsure = np.log(np.array([[0.3, 0.35, 0.33, 0.02], [0.9, 0.04, 0.04, 0.02]]))
    logits = np.stack([sure, unsure])
    out = decoder.beam_search(logits, BLANK)
    assert out[0][0] != ctc_greedy(logits, BLANK)[0][0]  # sure (0.9): the language model overrules it
    assert out[1][0] == ctc_greedy(logits, BLANK)[1][0] == [1]  # 0.35 < min_confidence: greedy


def test_beam_search_frames_follow_the_alignment() -> None:
    """The emission frame of each character is where its run starts in the frames."""
    from text_recognizer.inference.beam_search import ctc_beam_search_aligned

    log_probs = _frames(BLANK, 1, 1, BLANK, BLANK, 2, BLANK, 1)
    ids, frames = ctc_beam_search_aligned(log_probs, CHARS, BLANK, None, PLAIN)
    assert ids == [1, 2, 1]
    assert frames == [1, 5, 7]


@pytest.mark.parametrize("prune", [-8.0, -3.0, -0.5])
def test_frame_candidates_are_each_frames_own_selection(prune: float) -> None:
    rng = np.random.default_rng(3)
    log_probs = log_softmax(rng.normal(size=(40, 12)) * 3.0)
    cfg = BeamConfig(prune=prune, max_candidates=3)
    for row, (cand, cand_p) in zip(log_probs, _frame_candidates(log_probs, cfg), strict=True):
        idx = np.flatnonzero(row > cfg.prune)
        if len(idx) > cfg.max_candidates:
            idx = idx[np.argpartition(row[idx], -cfg.max_candidates)[-cfg.max_candidates :]]
        expected = idx.tolist() or [int(row.argmax())]
        assert cand == expected
        assert cand_p == [float(row[k]) for k in expected]


def test_the_beam_threshold_drops_prefixes_far_behind_the_best() -> None:
    """Threshold 0 keeps only the best prefix at each frame (the same search as a beam of one), whatever the
    beam's width; that cut changes some answers of the exhaustive search. On sure frames (the common case)
    a threshold of 8 nats changes nothing."""
    changed = 0
    for seed in range(12):
        log_probs = log_softmax(np.random.default_rng(seed).normal(0, 1.5, (6, 4)))
        zero = replace(PLAIN, beam_threshold=0.0)
        one = replace(PLAIN, beam=1)
        cut = ctc_beam_search(log_probs, CHARS, BLANK, None, zero)
        assert cut == ctc_beam_search(log_probs, CHARS, BLANK, None, one)
        changed += cut != ctc_beam_search(log_probs, CHARS, BLANK, None, PLAIN)
        sure = _frames(*np.random.default_rng(seed).integers(0, 4, 12).tolist(), p=0.9)
        default = replace(PLAIN, beam_threshold=BeamConfig().beam_threshold)
        assert ctc_beam_search(sure, CHARS, BLANK, None, default) == ctc_beam_search(
            sure, CHARS, BLANK, None, PLAIN
        )
    assert changed > 0


@pytest.mark.parametrize("seed", range(6))
def test_frames_of_blank_alone_keep_the_most_probable_labelling(seed: int) -> None:
    """Sure blank frames (the only candidate above ``prune``) between unsure ones: the shortcut for them
    and the bound that skips extensions give the exhaustive search's answer."""
    rng = np.random.default_rng(seed)
    log_probs = log_softmax(rng.normal(0, 2, (7, 4)))
    log_probs[1::2] = np.log([0.9997, 0.0001, 0.0001, 0.0001])
    cfg = replace(PLAIN, prune=-5.0, beam=16, beam_threshold=8.0)
    assert tuple(ctc_beam_search(log_probs, CHARS, BLANK, None, cfg)) == _exhaustive(log_probs)

"""How staging picks the beam search weights: the least language model within noise of the best CER."""

from __future__ import annotations

import pytest

from text_recognizer.inference.beam_search import BeamConfig
from text_recognizer.metrics import error_rate, error_rate_with_se
from text_recognizer.staging.calibrate import Tried, least_lm_within_noise


def tried(cer: float, se: float, alpha: float, beta: float) -> Tried:
    return Tried(cer, se, 0.01, BeamConfig(alpha=alpha, beta=beta))


def test_a_heavier_lm_better_only_by_noise_is_not_chosen() -> None:
    grid = [tried(0.1006, 0.004, 0.4, 2.0), tried(0.0994, 0.004, 0.7, 3.0), tried(0.12, 0.004, 0.4, 0.0)]
    assert least_lm_within_noise(grid).beam == BeamConfig(alpha=0.4, beta=2.0)


def test_a_clearly_better_setting_wins() -> None:
    grid = [tried(0.1100, 0.003, 0.4, 2.0), tried(0.0994, 0.003, 0.7, 3.0)]
    assert least_lm_within_noise(grid).beam == BeamConfig(alpha=0.7, beta=3.0)


def test_error_rate_with_se_matches_the_corpus_cer_and_shrinks_with_more_lines() -> None:
    preds, truths = ["helo world", "abc", "xyz"], ["hello world", "abd", "xyz"]
    cer, se = error_rate_with_se(preds, truths)
    assert cer == pytest.approx(error_rate(preds, truths))
    assert se > 0
    _, se_more = error_rate_with_se(preds * 10, truths * 10)
    assert se_more < se
    assert error_rate_with_se(["same"], ["same"]) == (0.0, 0.0)

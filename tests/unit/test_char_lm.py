"""The character n-gram language model: a proper distribution, it prefers the text it was built from, io."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from text_recognizer.inference.char_lm import FIRST, LAST, CharNgramLM

TEXTS = [
    "the cat sat on the mat and the dog sat on the log",
    "the state of the union is strong, said the president in 1999.",
    "we the people of the united states, in order to form a more perfect union",
]


def _total(lm: CharNgramLM, context: str) -> float:
    return sum(math.exp(lm.score(context, chr(c))) for c in range(FIRST, LAST + 1))


@pytest.mark.parametrize("context", ["", "the ", "the un", "zzqx", "sat on the "])
def test_unpruned_model_is_a_distribution(context: str) -> None:
    lm = CharNgramLM.build(TEXTS, order=5, min_count=1)
    assert _total(lm, context) == pytest.approx(1.0, abs=1e-6)


def test_pruned_model_never_exceeds_one() -> None:
    lm = CharNgramLM.build(TEXTS, order=5, min_count=2)
    for context in ["", "the ", "union", "q"]:
        assert _total(lm, context) <= 1.0 + 1e-6


def test_it_prefers_what_it_has_read() -> None:
    lm = CharNgramLM.build(TEXTS, order=5, min_count=1)
    assert lm.score("the un", "i") > lm.score("the un", "x")
    assert lm.line_logp("the union") > lm.line_logp("tha unoin")
    # characters outside printable ASCII are unknown, not an error
    assert lm.score("the", "\n") == lm.unk_logp


def test_save_and_load_give_the_same_scores(tmp_path: Path) -> None:
    lm = CharNgramLM.build(TEXTS, order=4, min_count=1)
    lm.save(tmp_path / "lm.npz")
    back = CharNgramLM.load(tmp_path / "lm.npz")
    assert back.order == 4 and len(back) == len(lm)
    for line in ["the cat sat", "a more perfect union", "xyz 42!"]:
        assert back.line_logp(line) == pytest.approx(lm.line_logp(line), abs=1e-4)


def test_bad_order_is_refused() -> None:
    with pytest.raises(ValueError, match="order"):
        CharNgramLM.build(TEXTS, order=9)


def test_a_context_shorter_than_the_order_counts_whole() -> None:
    # after "ab" only "c" was read, after "xb" only "d": the first character of a short context decides
    lm = CharNgramLM.build(["abc"] * 5 + ["xbd"] * 5, order=4, min_count=1)
    assert lm.score("ab", "c") > lm.score("xb", "c") + 1.0
    assert lm.score("xb", "d") > lm.score("ab", "d") + 1.0


@pytest.mark.parametrize("context", ["", " ", "the", "the un", "sat on the ", "q\n\x00z"])
def test_states_score_as_their_contexts(context: str) -> None:
    lm = CharNgramLM.build(TEXTS, order=5, min_count=2)
    state = 0
    for ch in context:
        state = lm.advance(state, ord(ch))
    assert state == lm.state(context)
    for ch in "aeiou ,.\x00\n":
        assert lm.score_state(state, ord(ch)) == lm.score(context, ch)


def test_grouped_tables_answer_as_plain_dicts_of_the_ngrams() -> None:
    """The n-grams grouped by context (:class:`NgramTables`) give the scores of the ARPA look-up over plain
    dicts of the same n-grams and backoff weights."""
    lm = CharNgramLM.build(TEXTS, order=5, min_count=2)
    keys, values, bkeys, bvalues = lm.tables.arrays()
    logp = dict(zip(keys.tolist(), values.tolist(), strict=True))
    backoff = dict(zip(bkeys.tolist(), bvalues.tolist(), strict=True))

    def reference(context: str, char: str) -> float:
        ctx = [ord(c) for c in (" " + context)[-(lm.order - 1) :]]
        total = 0.0
        while True:
            code = 0
            for x in ctx:
                code = (code << 7) | x
            v = logp.get((code << 7) | ord(char))
            if v is not None:
                return total + v
            if not ctx:
                return total + lm.unk_logp
            total += backoff.get(code, 0.0)
            ctx = ctx[1:]

    for context in ["the un", "zzqx", "sat on the ", "perfect", "q", "1999"]:
        for char in "aeiou nt,.9Z":
            assert lm.score(" " + context, char) == pytest.approx(reference(context, char), abs=1e-12)

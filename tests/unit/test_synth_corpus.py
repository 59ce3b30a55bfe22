"""The synthetic text corpus: cleaning, wrapping, split disjointness, line and paragraph bounds."""

from __future__ import annotations

import numpy as np
import pytest

from text_recognizer.data.synth.corpus import (
    MAX_LINE_CHARS,
    MAX_PARAGRAPH_LINES,
    MIN_LINE_CHARS,
    MIN_PARAGRAPH_LINES,
    SPLITS,
    clean_text,
    load_corpus,
    split_of,
    wrap,
)
from text_recognizer.vocab import CHARACTERS


def test_clean_text_folds_to_the_vocabulary() -> None:
    raw = "\u201cIt\u2019s 40\u00b0\u2014na\u00efve caf\u00e9s\u201d\n\tand\u00a0so\x02 on \u2022 done"
    cleaned = clean_text(raw)
    assert cleaned == '"It\'s 40 degrees-naive cafes" and so on - done'
    assert set(cleaned) <= set(CHARACTERS)


def test_split_of_is_stable_and_roughly_90_5_5() -> None:
    ids = [f"doc-{i}" for i in range(4000)]
    counts = {s: sum(split_of(i) == s for i in ids) for s in SPLITS}
    assert counts["train"] > 0.85 * len(ids)
    assert 0.03 * len(ids) < counts["val"] < 0.07 * len(ids)
    assert 0.03 * len(ids) < counts["test"] < 0.07 * len(ids)
    assert [split_of(i) for i in ids[:50]] == [split_of(i) for i in ids[:50]]


def test_wrap_keeps_every_word_in_order() -> None:
    sentence = "the quick brown fox jumps over the lazy dog and keeps on running far away"
    words = sentence.split(" ")
    lines = wrap(words * 3, width=35, n_lines=100)
    assert " ".join(lines) == " ".join(words * 3)
    assert all(len(line) <= 35 or len(line) <= MAX_LINE_CHARS for line in lines)


def test_wrap_hyphenates_and_the_parts_join_back() -> None:
    words = ["administration"] * 30 + ["extraordinarily"] * 30
    rng = np.random.default_rng(0)
    lines = wrap(words, width=40, n_lines=60, rng=rng)
    assert any(line.endswith("-") for line in lines)
    joined = "".join(line[:-1] if line.endswith("-") else line + " " for line in lines).strip()
    assert joined == " ".join(words)
    assert all(len(line) <= MAX_LINE_CHARS for line in lines)


def test_splits_have_disjoint_documents_and_text() -> None:
    corpora = {s: load_corpus(s) for s in SPLITS}
    train_docs = set(corpora["train"].docs)
    assert not train_docs & set(corpora["val"].docs)
    assert not train_docs & set(corpora["test"].docs)
    assert not set(corpora["val"].docs) & set(corpora["test"].docs)
    rng = np.random.default_rng(3)
    for split in ("val", "test"):
        for _ in range(15):
            line = corpora[split].sample_line(rng)
            assert not any(line in doc for doc in corpora["train"].docs), (split, line)


@pytest.mark.parametrize("split", SPLITS)
def test_lines_are_30_to_60_characters_of_the_vocabulary(split: str) -> None:
    corpus = load_corpus(split)
    rng = np.random.default_rng(1)
    lines = [corpus.sample_line(rng) for _ in range(500)]
    lengths = [len(line) for line in lines]
    assert min(lengths) >= MIN_LINE_CHARS - 5
    assert max(lengths) <= MAX_LINE_CHARS
    assert MIN_LINE_CHARS + 5 < np.mean(lengths) < MAX_LINE_CHARS - 5
    assert set("".join(lines)) <= set(CHARACTERS) - {"\n"}
    assert any(ch.isdigit() for line in lines for ch in line)
    assert any(ch in ",.;:" for line in lines for ch in line)


def test_paragraphs_have_3_to_12_lines() -> None:
    corpus = load_corpus("val")
    rng = np.random.default_rng(2)
    counts = []
    for _ in range(200):
        lines = corpus.sample_paragraph(rng)
        counts.append(len(lines))
        assert all(0 < len(line) <= MAX_LINE_CHARS and "\n" not in line for line in lines)
    assert min(counts) >= MIN_PARAGRAPH_LINES
    assert max(counts) <= MAX_PARAGRAPH_LINES
    assert len(set(counts)) > 5


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        load_corpus("validation")

"""English prose for the synthetic data: State of the Union addresses and the Brown Corpus, cut into lines
and paragraphs.

The two sources are mixed by :data:`SOURCE_WEIGHTS` (half the lines from each): the speeches bring two
centuries of formal prose with figures and dates, the Brown Corpus the register of the pages people write
(press, letters-like essays, fiction, learned prose of 1961, the genres of IAM's texts, none of them).

Every document (a speech or a Brown text) belongs to exactly one split (train/val/test, about 90/5/5, by a
hash of its id), so the splits share no text beyond the odd stock phrase. Lines and paragraphs are cut at
random places of a document by a
seeded generator: a line is one greedy word-wrap of 30 to 60 characters, a paragraph is 3 to 12 consecutive
lines wrapped to one width.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from text_recognizer.data.synth.assets import BROWN_FILE, CORPUS_FILE, MissingAssetsError
from text_recognizer.paths import corpus_dir
from text_recognizer.vocab import CHARACTERS, Vocabulary

SPLITS: tuple[str, ...] = ("train", "val", "test")
MIN_LINE_CHARS = 30
MAX_LINE_CHARS = 60
MIN_PARAGRAPH_LINES = 3
MAX_PARAGRAPH_LINES = 12
#: Characters of a speech read from the sampled offset: enough for the longest paragraph.
_WINDOW = (MAX_LINE_CHARS + 20) * MAX_PARAGRAPH_LINES

#: Chance to hyphenate a long word at a line break, and the shortest part left on either side.
HYPHENATE_PROB = 0.25
_HYPHEN_MIN_PART = 3
_MAX_REDRAWS = 4
#: Validation and test text share no run of this many words with training text.
SHINGLE_WORDS = 8
PREPARED_FILE = "prepared-v2.jsonl"
#: Share of sampled text from each source (the raw file each comes from, and its weight).
SOURCE_WEIGHTS: dict[str, float] = {"sotu": 0.5, "brown": 0.5}
SOURCE_FILES: dict[str, str] = {"sotu": CORPUS_FILE, "brown": BROWN_FILE}
_PUNCT = string.punctuation

_ALLOWED = frozenset(CHARACTERS) - {"\n"}
_EXTRA_FOLD = str.maketrans({"\u2011": "-", "\u2022": "-", "\u00b0": " degrees"})
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Fold ``text`` into the vocabulary: ASCII punctuation, accents stripped, one space between words."""
    text = Vocabulary.normalize(text).translate(_EXTRA_FOLD)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c if c in _ALLOWED else (" " if c.isspace() else "") for c in text)
    return _SPACES.sub(" ", text).strip()


def split_of(doc_id: str) -> str:
    """The split a document belongs to: ``test`` for 5 %, ``val`` for 5 %, ``train`` for the rest."""
    bucket = int(hashlib.sha1(doc_id.encode()).hexdigest(), 16) % 20
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


@dataclass(frozen=True)
class Corpus:
    """The cleaned documents of one split.

    Attributes:
        docs: cleaned document texts.
        weights: sampling probability of each document: its source's share of :data:`SOURCE_WEIGHTS`,
            split among the source's documents in proportion to their length.
    """

    split: str
    docs: tuple[str, ...]
    weights: np.ndarray

    def _window(self, rng: np.random.Generator) -> list[str]:
        """Words from a random place of a random document (starting at a word boundary)."""
        d = int(rng.choice(len(self.docs), p=self.weights))
        doc = self.docs[d]
        start = int(rng.integers(0, max(1, len(doc) - _WINDOW)))
        if start > 0:
            space = doc.find(" ", start)
            start = space + 1 if space >= 0 else 0
        words = doc[start : start + _WINDOW].split(" ")
        return words[:-1] if len(words) > 1 else words  # the last one may be cut

    def sample_line(self, rng: np.random.Generator) -> str:
        """One line of 30 to 60 characters (mostly words: lines of figures from tables are redrawn)."""
        for _ in range(_MAX_REDRAWS):
            width = int(rng.integers(MIN_LINE_CHARS, MAX_LINE_CHARS + 1))
            line = wrap(self._window(rng), width, 1, rng)[0]
            if _wordy(line):
                break
        return line

    def sample_paragraph(self, rng: np.random.Generator, n_lines: int | None = None) -> list[str]:
        """3 to 12 consecutive lines wrapped to one width (``n_lines``: at most that many instead)."""
        n = n_lines or int(rng.integers(MIN_PARAGRAPH_LINES, MAX_PARAGRAPH_LINES + 1))
        for _ in range(_MAX_REDRAWS):
            width = int(rng.integers(MIN_LINE_CHARS + 6, MAX_LINE_CHARS + 1))
            lines = wrap(self._window(rng), width, n, rng)
            if _wordy(" ".join(lines)):
                break
        return lines


def _wordy(text: str) -> bool:
    """Whether at least 60 % of the non-space characters are letters (not a table of figures)."""
    chars = text.replace(" ", "")
    return sum(c.isalpha() for c in chars) >= 0.6 * len(chars)


def wrap(words: list[str], width: int, n_lines: int, rng: np.random.Generator | None = None) -> list[str]:
    """Greedy word-wrap of ``words`` into up to ``n_lines`` lines of at most ``width`` characters.

    A line shorter than ``MIN_LINE_CHARS`` takes more words up to ``MAX_LINE_CHARS``; a word longer than
    that is cut. With ``rng``, a long word that does not fit is sometimes hyphenated across the line break
    (``HYPHENATE_PROB``), as people do when writing.
    """
    lines: list[str] = []
    words = list(words)
    i = 0
    while len(lines) < n_lines and i < len(words):
        line = words[i][:MAX_LINE_CHARS]
        i += 1
        while i < len(words):
            word = words[i]
            nxt = len(line) + 1 + len(word)
            if nxt <= width or (len(line) < MIN_LINE_CHARS and nxt <= MAX_LINE_CHARS):
                line = f"{line} {word}"
                i += 1
                continue
            room = width - len(line) - 2  # letters that fit before the hyphen
            if (
                rng is not None
                and word.isalpha()
                and room >= _HYPHEN_MIN_PART
                and len(word) - room >= _HYPHEN_MIN_PART
                and rng.random() < HYPHENATE_PROB
            ):
                line = f"{line} {word[:room]}-"
                words[i] = word[room:]
            break
        lines.append(line)
    return lines


def _read_raw(path: Path) -> list[tuple[str, str]]:
    """``(id, text)`` of every document in one fetched corpus file."""
    if not path.exists():
        raise MissingAssetsError(f"No text corpus at {path}")
    records: list[tuple[str, str]] = []
    with path.open() as f:
        for line_no, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                records.append((str(record["id"]), str(record["text"])))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{line_no}: malformed corpus record ({e})") from e
    return records


def _keys(words: list[str]) -> list[int]:
    """Hashes of every ``SHINGLE_WORDS``-word run, ignoring case and punctuation."""
    bare = [w.strip(_PUNCT).lower() for w in words]
    n = SHINGLE_WORDS
    return [hash(tuple(bare[i : i + n])) for i in range(len(bare) - n + 1)]


def _unshared_runs(words: list[str], seen: set[int]) -> list[str]:
    """The runs of ``words`` left after cutting out every ``SHINGLE_WORDS``-word run found in ``seen``."""
    covered = np.zeros(len(words), dtype=bool)
    for i, key in enumerate(_keys(words)):
        if key in seen:
            covered[i : i + SHINGLE_WORDS] = True
    runs: list[str] = []
    start = None
    for i, cut in enumerate([*covered.tolist(), True]):
        if not cut and start is None:
            start = i
        elif cut and start is not None:
            runs.append(" ".join(words[start:i]))
            start = None
    return runs


def prepare_corpus(raw: dict[str, Path], out: Path) -> None:
    """Clean the fetched documents (``raw``: source name -> file), assign splits, and make validation and test
    text disjoint from training (within and across the sources).

    Speeches quote each other and repeat stock phrases ("the First Lady of the United States"), so splitting
    by speech alone is not enough: every run of ``SHINGLE_WORDS`` words of a validation or test speech that
    also occurs in training is cut out, and the speech continues as separate documents around the cut.
    Writes ``out`` as JSON lines ``{"id", "source", "split", "text"}``.
    """
    ids_texts = [
        (f"{source}:{doc_id}" if source != "sotu" else doc_id, source, text)  # speech ids as before
        for source, path in raw.items()
        for doc_id, text in _read_raw(path)
    ]
    docs = [(doc_id, source, split_of(doc_id), clean_text(text)) for doc_id, source, text in ids_texts]
    seen: set[int] = set()
    for _, _, split, text in docs:
        if split == "train":
            seen.update(_keys(text.split(" ")))
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        for doc_id, source, split, text in docs:
            parts = [text] if split == "train" else _unshared_runs(text.split(" "), seen)
            for k, part in enumerate(parts):
                if len(part) > _WINDOW:
                    record = {"id": f"{doc_id}#{k}", "source": source, "split": split, "text": part}
                    f.write(json.dumps(record) + "\n")
    tmp.replace(out)


@lru_cache(maxsize=len(SPLITS))
def load_corpus(split: str) -> Corpus:
    """The documents of ``split``, loaded once per process (prepared first by :func:`prepare_corpus`).

    Raises:
        ValueError: unknown split, or a malformed corpus file (naming the file and line).
        MissingAssetsError: the corpus was not fetched.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    raw = {source: corpus_dir() / name for source, name in SOURCE_FILES.items()}
    prepared = corpus_dir() / PREPARED_FILE
    missing = [str(p) for p in raw.values() if not p.exists()]
    if missing:
        raise MissingAssetsError(f"No text corpus at {', '.join(missing)}")
    newest = max(p.stat().st_mtime for p in raw.values())
    if not prepared.exists() or prepared.stat().st_mtime < newest:
        prepare_corpus(raw, prepared)
    docs: list[str] = []
    sources: list[str] = []
    with prepared.open() as f:
        for line_no, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                if record["split"] == split:
                    docs.append(str(record["text"]))
                    sources.append(str(record["source"]))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{prepared}:{line_no}: malformed corpus record ({e})") from e
    if not docs:
        raise MissingAssetsError(f"The corpus {prepared} has no documents for split {split!r}")
    lengths = np.array([len(d) for d in docs], dtype=np.float64)
    weights = np.zeros_like(lengths)
    for source, share in SOURCE_WEIGHTS.items():
        mine = np.array([s == source for s in sources])
        if mine.any():
            weights[mine] = share * lengths[mine] / lengths[mine].sum()
    return Corpus(split=split, docs=tuple(docs), weights=weights / weights.sum())

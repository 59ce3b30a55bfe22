"""Character and word error rates, and latency percentiles, computed the same way for every system.

Texts are compared after :func:`canonical`: typographic punctuation folded to ASCII (as the model is trained),
each line stripped with runs of spaces collapsed, empty lines dropped, lines joined by ``\\n``. The line break
counts as one character, so a system that reads the lines in the wrong order or merges them pays for it.
``text-recognizer evaluate`` compares the raw prediction with the folded truth, so its figures for our model
can differ from these slightly (doubled spaces, empty lines).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from text_recognizer.metrics import edit_distance
from text_recognizer.vocab import Vocabulary


def canonical(text: str) -> str:
    lines = (" ".join(line.split()) for line in Vocabulary.normalize(text).splitlines())
    return "\n".join(line for line in lines if line)


def error_rates(pairs: Iterable[tuple[str, str]]) -> tuple[float, float]:
    """(truth, prediction) pairs -> (CER, WER) over the whole set: total edits / total truth length."""
    char_edits = char_total = word_edits = word_total = 0
    for truth, pred in pairs:
        t, p = canonical(truth), canonical(pred)
        char_edits += edit_distance(t, p)
        char_total += len(t)
        word_edits += edit_distance(t.split(), p.split())
        word_total += len(t.split())
    return char_edits / max(char_total, 1), word_edits / max(word_total, 1)


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> list[float]:
    """The ``qs`` percentiles of ``values`` (NaN each when there are none)."""
    if not values:
        return [float("nan")] * len(qs)
    return [float(x) for x in np.percentile(np.asarray(values, dtype=np.float64), qs)]

"""Edit distance and error rates (pure Python), shared by staging and evaluation."""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(a: list[str] | str, b: list[str] | str) -> int:
    """Levenshtein distance between two sequences (characters or words)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def error_rate(predictions: Sequence[str], truths: Sequence[str], words: bool = False) -> float:
    """Corpus-level CER (or WER): total edits over total reference characters (or words)."""
    if words:
        edits = sum(edit_distance(t.split(), p.split()) for p, t in zip(predictions, truths, strict=True))
        return edits / max(1, sum(len(t.split()) for t in truths))
    edits = sum(edit_distance(t, p) for p, t in zip(predictions, truths, strict=True))
    return edits / max(1, sum(len(t) for t in truths))


def error_rate_with_se(predictions: Sequence[str], truths: Sequence[str]) -> tuple[float, float]:
    """Corpus-level CER and its standard error over lines (the ratio estimator: a line's edits against
    ``CER`` times its length), for telling a real difference between two decoders from noise."""
    edits = [edit_distance(t, p) for p, t in zip(predictions, truths, strict=True)]
    lengths = [len(t) for t in truths]
    total, n = max(1, sum(lengths)), len(lengths)
    cer = sum(edits) / total
    if n < 2:
        return cer, 0.0
    spread = sum((e - cer * m) ** 2 for e, m in zip(edits, lengths, strict=True)) / (n - 1)
    return cer, (n * spread) ** 0.5 / total

"""CTC prefix beam search with a character language model (shallow fusion). numpy and the standard library.

Each beam is a prefix with two probabilities: of the paths ending in a blank and of those ending in its last
character (so that "ll" needs a blank between the two l's, as in CTC itself). Appending a character multiplies
by its frame probability, by ``P_lm(char | prefix) ** alpha`` and by ``exp(beta)`` (a bonus per character that
offsets the language model's pull towards short outputs). Frames whose characters are all below ``prune``
(log probability) apart from the blank cost almost nothing, which is most frames of a line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from text_recognizer.inference.char_lm import START, CharNgramLM

NEG_INF = -math.inf


@dataclass(frozen=True)
class BeamConfig:
    """Weights of the language model (``alpha``), the per-character bonus (``beta``) and the beam width."""

    alpha: float = 0.5
    beta: float = 1.0
    #: 32 with ``beam_threshold`` 8 (on 400 synthetic validation lines, line-default-20261207125839): CER
    #: 0.0292 at beam 8 -> 0.0275, the same as beam 32 without a threshold (0.0275) at a third of its time;
    #: 30 synthetic validation paragraphs 0.0913 -> 0.0898. A real paragraph reads in 185 ms against 124 ms at
    #: beam 8 (beam 16, threshold 6: 137 ms, two thirds of the gain). Beam 64 took twice as long again
    beam: int = 32
    #: characters whose frame log probability is below this are not tried at that frame (-5: on 400
    #: synthetic validation lines the same CER as -7, 0.065, with a fifth fewer candidates tried; -4 is
    #: 0.3 % worse on lines, 1.3 % on paragraphs)
    prune: float = -5.0
    #: and at most this many of the most probable ones are (an unsure model would otherwise try them all)
    max_candidates: int = 6
    #: lines the image model reads with a lower confidence (geometric mean of the greedy path's character
    #: probabilities) keep the greedy reading: specks cut out as lines, where a language model invents words
    min_confidence: float = 0.5
    #: prefixes whose log probability is more than this below the best one's are dropped at each frame
    #: (before the ``beam`` cut): most frames are sure, and the beam's tail there costs time, not errors
    beam_threshold: float = 8.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lse(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log softmax over the last axis."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _frame_candidates(log_probs: np.ndarray, cfg: BeamConfig) -> list[tuple[list[int], list[float]]]:
    """The tokens tried at each frame of ``[T, V]`` and their log probabilities: those above ``cfg.prune``
    (by id), the ``cfg.max_candidates`` most probable of them when there are more, the most probable token
    when there is none. Selected for all frames at once (a frame's own numpy calls cost more than its
    candidates)."""
    over = log_probs > cfg.prune
    counts = over.sum(axis=1).tolist()
    rows, ids = np.nonzero(over)
    ps = log_probs[rows, ids].tolist()
    ids_list = ids.tolist()
    top = log_probs.argmax(axis=1).tolist()
    out: list[tuple[list[int], list[float]]] = []
    start = 0
    for t, n in enumerate(counts):
        cand, cand_p = ids_list[start : start + n], ps[start : start + n]
        start += n
        if n > cfg.max_candidates:
            keep = np.argpartition(log_probs[t, cand], -cfg.max_candidates)[-cfg.max_candidates :].tolist()
            cand, cand_p = [cand[i] for i in keep], [cand_p[i] for i in keep]
        elif n == 0:
            cand, cand_p = [top[t]], [float(log_probs[t, top[t]])]
        out.append((cand, cand_p))
    return out


def ctc_beam_search(
    log_probs: np.ndarray, chars: list[str], blank: int, lm: CharNgramLM | None, cfg: BeamConfig
) -> list[int]:
    """Best token ids for one line (see :func:`ctc_beam_search_aligned`)."""
    return ctc_beam_search_aligned(log_probs, chars, blank, lm, cfg)[0]


def ctc_beam_search_aligned(
    log_probs: np.ndarray, chars: list[str], blank: int, lm: CharNgramLM | None, cfg: BeamConfig
) -> tuple[list[int], list[int]]:
    """Best token ids for one line and the frame at which each was emitted.

    Each beam keeps the emission frames of its most probable path (of the paths summed into it, the one
    contributing most at each frame), so the frames cost one tuple per new prefix.

    Args:
        log_probs: CTC log probabilities ``[T, V]`` (frames by vocabulary).
        chars: the string of each token id (``V`` entries); special tokens may be any non-printable string.
        blank: the CTC blank id.
        lm: the character model (``None``: plain beam search, ``alpha`` unused).
        cfg: weights and widths.
    Returns:
        ``(ids, frames)``: ``frames[i]`` in ``0..T-1`` is the frame where ``ids[i]`` starts, increasing.
    """
    # beams: prefix (token ids as a string, one character chr(id) each: its hash is kept, where a tuple's is
    # computed again at each look-up) -> [log P ending in blank, log P ending in a character,
    #                                    log P of the best contribution this frame, its emission frames]
    beams: dict[str, list[Any]] = {"": [0.0, NEG_INF, NEG_INF, ()]}
    texts: dict[str, str] = {"": START}

    def extension(text: str, k: int) -> float:
        # the language model keeps its scores (:meth:`CharNgramLM.score`); a cache of this line's own
        # answered a fifth of the calls and cost more than it saved
        return cfg.beta + (cfg.alpha * lm.score(text, chars[k]) if lm is not None else 0.0)

    for t, (cand, cand_p) in enumerate(_frame_candidates(log_probs, cfg)):
        nxt: dict[str, list[Any]] = {}
        for prefix, (pb, pnb, _, frames) in beams.items():
            total = _lse(pb, pnb)
            last = ord(prefix[-1]) if prefix else -1
            text = texts[prefix]
            for k, p in zip(cand, cand_p, strict=True):
                if k == blank:
                    e = nxt.setdefault(prefix, [NEG_INF, NEG_INF, NEG_INF, frames])
                    c = total + p
                    e[0] = _lse(e[0], c)
                    if c > e[2]:
                        e[2], e[3] = c, frames
                    continue
                new = prefix + chr(k)
                if new not in texts:
                    texts[new] = text + chars[k]
                e = nxt.setdefault(new, [NEG_INF, NEG_INF, NEG_INF, ()])
                if k == last:
                    # a repeat only counts as a new character after a blank; else it extends the last one
                    c = pb + p + extension(text, k)
                    same = nxt.setdefault(prefix, [NEG_INF, NEG_INF, NEG_INF, frames])
                    s = pnb + p
                    same[1] = _lse(same[1], s)
                    if s > same[2]:
                        same[2], same[3] = s, frames
                else:
                    c = total + p + extension(text, k)
                e[1] = _lse(e[1], c)
                if c > e[2]:
                    e[2], e[3] = c, (*frames, t)
        if len(nxt) > 1:
            scored = [(_lse(v[0], v[1]), k) for k, v in nxt.items()]
            floor = max(scored)[0] - cfg.beam_threshold
            kept = [kv for kv in scored if kv[0] >= floor]
            if len(kept) > cfg.beam:
                kept = sorted(kept, reverse=True)[: cfg.beam]
            if len(kept) < len(nxt):
                nxt = {k: nxt[k] for _, k in kept}
        beams = nxt
    best, (_, _, _, frames) = max(beams.items(), key=lambda kv: _lse(kv[1][0], kv[1][1]))
    return [ord(c) for c in best], list(frames)

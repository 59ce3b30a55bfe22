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
    #: 32 (with ``beam_threshold`` 8, on 400 synthetic validation lines, line-default-20261207125839): CER
    #: 0.0292 at beam 8 -> 0.0275, that of beam 32 without a threshold at a third of its time; 30 synthetic
    #: validation paragraphs 0.0913 -> 0.0898. Beam 64 took twice as long again
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
    #: (before the ``beam`` cut): most frames are sure, and the beam's tail there costs time, not errors.
    #: 5 rather than 8 (line-default-20261207154240 with fixed context states; 400 / 400 validation lines,
    #: 30 / 30 validation paragraphs of the two renderers): thresholds 8, 6, 5, 4 read lines 0.0260 / 0.0259,
    #: 0.0261 / 0.0259, 0.0262 / 0.0261, 0.0272 / 0.0273 and paragraphs 0.0867 / 0.0882, 0.0871 / 0.0886,
    #: 0.0870 / 0.0882, 0.0866 / 0.0884, and a real page's lines with 1,732, 1,165, 872, 586 language model
    #: calls a line (real lines are less sure than synthetic ones: more prefixes stay within 8 nats)
    beam_threshold: float = 5.0

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
    # the language model's context state after each prefix (:meth:`CharNgramLM.advance`)
    states: dict[str, int] = {"": lm.state(START) if lm is not None else 0}
    codes = [ord(c) if len(c) == 1 else 0 for c in chars]
    alpha, beta, thr = cfg.alpha, cfg.beta, cfg.beam_threshold
    # an extension adds at most ``bonus`` to its prefix's log probability (the language model's is at most
    # 0): one whose bound is more than ``thr`` below the best contribution so far this frame would be cut at
    # the end of the frame, so it is not computed (the outcome is that of computing it, but for sums of
    # several such contributions to one prefix)
    bonus = max(beta, 0.0) if lm is None or alpha >= 0 else math.inf
    order = [""]  # the beams, most probable first

    for t, (cand, cand_p) in enumerate(_frame_candidates(log_probs, cfg)):
        if len(cand) == 1 and cand[0] == blank:
            # only the blank: every beam now ends in a blank, and their order does not change
            p = cand_p[0]
            beams = {k: [_lse(v[0], v[1]) + p, NEG_INF, NEG_INF, v[3]] for k in order for v in (beams[k],)}
            continue
        nxt: dict[str, list[Any]] = {}
        top_p = max(cand_p)
        best = NEG_INF
        for prefix in order:
            pb, pnb, _, frames = beams[prefix]
            total = _lse(pb, pnb)
            if total + top_p + bonus < best - thr:
                break  # so would every beam after this one
            last = ord(prefix[-1]) if prefix else -1
            state = states[prefix]
            for k, p in zip(cand, cand_p, strict=True):
                if k == blank:
                    e = nxt.setdefault(prefix, [NEG_INF, NEG_INF, NEG_INF, frames])
                    c = total + p
                    e[0] = _lse(e[0], c)
                    if c > e[2]:
                        e[2], e[3] = c, frames
                    if c > best:
                        best = c
                    continue
                if k == last:
                    # a repeat only counts as a new character after a blank; else it extends the last one
                    same = nxt.setdefault(prefix, [NEG_INF, NEG_INF, NEG_INF, frames])
                    s = pnb + p
                    same[1] = _lse(same[1], s)
                    if s > same[2]:
                        same[2], same[3] = s, frames
                    if s > best:
                        best = s
                    c = pb + p
                else:
                    c = total + p
                if c + bonus < best - thr:
                    continue
                if lm is not None:
                    c += beta + alpha * lm.score_state(state, codes[k])
                else:
                    c += beta
                new = prefix + chr(k)
                if new not in states:
                    states[new] = lm.advance(state, codes[k]) if lm is not None else 0
                e = nxt.setdefault(new, [NEG_INF, NEG_INF, NEG_INF, ()])
                e[1] = _lse(e[1], c)
                if c > e[2]:
                    e[2], e[3] = c, (*frames, t)
                if c > best:
                    best = c
        scored = sorted(((_lse(v[0], v[1]), k) for k, v in nxt.items()), reverse=True)
        floor = scored[0][0] - thr
        order = [k for s, k in scored[: cfg.beam] if s >= floor]
        beams = nxt
    return [ord(c) for c in order[0]], list(beams[order[0]][3])

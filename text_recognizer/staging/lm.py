"""The character language model staged beside a CTC model, built from the synthetic corpus's training text."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from text_recognizer.inference.char_lm import DEFAULT_MIN_COUNT, DEFAULT_ORDER, CharNgramLM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LMConfig:
    """The character language model staged beside a CTC model (``order=0``: none)."""

    order: int = DEFAULT_ORDER
    min_count: int = DEFAULT_MIN_COUNT
    #: read at most this many characters of training text (None: all of it, about 10 M)
    max_chars: int | None = None
    #: (alpha, beta) pairs tried on the synthetic validation lines; the least LM weight within one standard
    #: error of the lowest CER wins (:func:`text_recognizer.staging.calibrate.least_lm_within_noise`)
    grid: tuple[tuple[float, float], ...] = tuple(
        (a, b) for a in (0.4, 0.7, 1.0) for b in (0.0, 1.0, 2.0, 3.0)
    )


#: what :func:`build_lm` reads, as the manifest records it
LM_TEXT = "synthetic corpus, train split"


def build_lm(cfg: LMConfig) -> CharNgramLM | None:
    """The n-gram model of the synthetic corpus's training split, or None without the corpus."""
    if cfg.order <= 0:
        return None
    try:
        from text_recognizer.data.synth.corpus import load_corpus

        docs = list(load_corpus("train").docs)
    except Exception as e:
        log.warning("no language model (%s)", e)
        return None
    if cfg.max_chars is not None:
        kept, left = [], cfg.max_chars
        for d in docs:
            if left <= 0:
                break
            kept.append(d[:left])
            left -= len(kept[-1])
        docs = kept
    t0 = time.perf_counter()
    lm = CharNgramLM.build(docs, order=cfg.order, min_count=cfg.min_count)
    print(f"language model: order {cfg.order}, {len(lm)} n-grams, {time.perf_counter() - t0:.1f} s")
    return lm

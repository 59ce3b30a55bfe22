"""A character n-gram language model for CTC beam search (numpy only, so the predictor can load it).

Interpolated Witten-Bell estimates, counted with vectorised integer codes (a 6-gram over printable ASCII is
one int64: 7 bits a character), then pruned to n-grams seen at least ``min_count`` times. Querying follows the
ARPA convention: a stored n-gram gives its interpolated log probability, otherwise the context's backoff
weight is added and the context shortened by one character.

Staging builds it from the training text of the synthetic corpus and saves it as ``lm.npz`` in the artifact;
:func:`text_recognizer.inference.beam_search.ctc_beam_search` reads lines with it.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: characters the model knows: printable ASCII, 7 bits each
FIRST, LAST = 32, 126
BITS = 7
#: every line starts at a word boundary: the context before the first character is a space
START = " "
#: the n-gram order and pruning staging uses unless told otherwise (``text-recognizer stage --lm-order``)
DEFAULT_ORDER = 6
DEFAULT_MIN_COUNT = 2
#: at most this many scores are remembered (:meth:`CharNgramLM.score`); then the memo starts again
MEMO_SIZE = 200_000


def encode_text(text: str) -> np.ndarray:
    """``text`` -> uint8 codes; characters outside printable ASCII become spaces."""
    a = np.frombuffer(text.encode("ascii", "replace"), dtype=np.uint8).copy()
    a[(a < FIRST) | (a > LAST)] = ord(" ")
    return a


def _ngram_codes(chars: np.ndarray, n: int) -> np.ndarray:
    """All n-grams of ``chars`` (uint8 ``[L]``) as int64 codes ``[L - n + 1]`` (first character highest)."""
    m = len(chars) - n + 1
    if m <= 0:
        return np.zeros(0, np.int64)
    codes = np.zeros(m, np.int64)
    for i in range(n):
        codes = (codes << BITS) | chars[i : i + m].astype(np.int64)
    return codes


class NgramTables:
    """The n-grams grouped by context, for look-ups one at a time from Python.

    ``index`` maps a context's code (its characters, 7 bits each; 0: no context) to its row ``i``; the
    characters seen after it are the bytes ``chars[starts[i]:starts[i + 1]]`` (found with ``bytes.find``),
    their log probabilities ``logp`` at the same positions, and its backoff weight is ``backoff[i]`` (0 for a
    context without one). A dict of the ~300,000 contexts and flat arrays load in a fraction of the time a
    dict of the ~800,000 n-grams and one of the contexts' weights took (0.56 s at each start of the server).
    """

    def __init__(self, keys: np.ndarray, values: np.ndarray, bkeys: np.ndarray, bvalues: np.ndarray) -> None:
        """``keys`` ``[N]``: codes of (context + character), ``values`` their log probabilities; ``bkeys``,
        ``bvalues`` ``[B]``: contexts and their backoff weights. float32 values stay float32 (``lm.npz``),
        float64 ones (a model just built) float64."""
        typecode = "f" if values.dtype == np.float32 else "d"
        order = np.argsort(keys, kind="stable")
        keys = keys[order].astype(np.int64, copy=False)
        ctx = keys >> BITS
        bkeys = bkeys.astype(np.int64, copy=False)
        # the contexts, sorted and unique (np.union1d sorted the 1.1 million again: half a second)
        ctx_u = ctx[np.concatenate(([True], ctx[1:] != ctx[:-1]))] if len(ctx) else ctx
        pos = np.minimum(np.searchsorted(ctx_u, bkeys), max(len(ctx_u) - 1, 0))
        extra = bkeys[ctx_u[pos] != bkeys] if len(ctx_u) else bkeys
        self.contexts = np.unique(np.concatenate([ctx_u, extra])) if len(extra) else ctx_u
        rows = np.searchsorted(self.contexts, ctx)
        self.starts: list[int] = np.searchsorted(rows, np.arange(len(self.contexts) + 1)).tolist()
        self.index: dict[int, int] = dict(zip(self.contexts.tolist(), range(len(self.contexts)), strict=True))
        self.chars = (keys & ((1 << BITS) - 1)).astype(np.uint8).tobytes()
        self.logp = array(typecode, values[order].tobytes())
        brows = np.searchsorted(self.contexts, bkeys)
        bo = np.zeros(len(self.contexts), values.dtype)
        bo[brows] = bvalues
        self.backoff = array(typecode, bo.tobytes())
        self.has_backoff = np.zeros(len(self.contexts), bool)
        self.has_backoff[brows] = True

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(keys, values, bkeys, bvalues)`` as :meth:`__init__` takes them (keys sorted)."""
        starts = np.asarray(self.starts, dtype=np.int64)
        counts = starts[1:] - starts[:-1]
        chars = np.frombuffer(self.chars, np.uint8).astype(np.int64)
        keys = (np.repeat(self.contexts, counts) << BITS) | chars
        dtype = np.float32 if self.logp.typecode == "f" else np.float64
        values = np.frombuffer(self.logp, dtype)
        backoff = np.frombuffer(self.backoff, dtype)
        return keys, values, self.contexts[self.has_backoff], backoff[self.has_backoff]

    def __len__(self) -> int:
        return len(self.logp)


@dataclass
class CharNgramLM:
    """An n-gram model of ``order`` characters: its n-grams' log probabilities and its contexts' backoff
    weights (:class:`NgramTables`)."""

    order: int
    tables: NgramTables = field(repr=False)
    #: log probability of a character never seen at all
    unk_logp: float = -20.0

    #: scores already computed, by the code of (context state, character): the beams of a line, and the
    #: lines of a page, ask for the same few thousand again and again
    _memo: dict[int, float] = field(default_factory=dict, repr=False, compare=False)

    # A context *state* is the code of the last ``order - 1`` characters (7 bits each, the first one highest;
    # 0: no context). Every character is at least 32, so a state's length is its bit length over 7, rounded
    # up. The beam search carries one state per prefix and advances it by one character at a time.

    def state(self, context: str) -> int:
        """The state after ``context`` (its last ``order - 1`` characters count; others become spaces)."""
        s = 0
        for ch in context[max(0, len(context) - self.order + 1) :]:
            s = self.advance(s, ord(ch))
        return s

    def advance(self, state: int, code: int) -> int:
        """The state after one more character (``code``: its code point; outside printable ASCII: a space)."""
        if not FIRST <= code <= LAST:
            code = 32
        return ((state << BITS) | code) & ((1 << (BITS * (self.order - 1))) - 1)

    def score_state(self, state: int, code: int) -> float:
        """Natural-log probability of the character ``code`` (code point) after the context ``state``."""
        if not FIRST <= code <= LAST:
            return self.unk_logp
        key = (state << BITS) | code
        v = self._memo.get(key)
        if v is None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            v = self._memo[key] = self._backoff_score(state, code)
        return v

    def score(self, context: str, char: str) -> float:
        """Natural-log probability of ``char`` after ``context`` (its last ``order - 1`` characters count)."""
        return self.score_state(self.state(context), ord(char) if len(char) == 1 else 0)

    def _backoff_score(self, ctx: int, code: int) -> float:
        t = self.tables
        index, chars, starts = t.index, t.chars, t.starts
        total = 0.0
        while True:
            i = index.get(ctx)
            if i is not None:
                j = chars.find(code, starts[i], starts[i + 1])
                if j >= 0:
                    return total + t.logp[j]
                if not ctx:
                    return total + self.unk_logp
                total += t.backoff[i]
            elif not ctx:
                return total + self.unk_logp
            n = (ctx.bit_length() + BITS - 1) // BITS  # characters in the context: drop the first one
            ctx &= (1 << (BITS * (n - 1))) - 1

    def line_logp(self, text: str) -> float:
        """Log probability of a whole line (each character given the ones before it and :data:`START`)."""
        s = START + text
        return sum(self.score(s[: i + 1], s[i + 1]) for i in range(len(text)))

    # ------------------------------------------------------------------------------------ build / io

    @classmethod
    def build(
        cls, texts: Iterable[str], order: int = DEFAULT_ORDER, min_count: int = DEFAULT_MIN_COUNT
    ) -> CharNgramLM:
        """Count the n-grams (1..``order``) of ``texts`` and estimate interpolated Witten-Bell probabilities.

        Each text is read as ``START + text``; unigrams get add-one smoothing over printable ASCII.
        """
        if not 1 <= order <= 8:
            raise ValueError(f"order must be 1..8 (7-bit codes in an int64), got {order}")
        chars = [encode_text(START + t) for t in texts]
        if not chars:
            raise ValueError("no text to build a language model from")
        # codes and log probabilities of each order's n-grams, codes and weights of each order's contexts
        logp_keys: list[np.ndarray] = []
        logp_values: list[np.ndarray] = []
        backoff_keys: list[np.ndarray] = []
        backoff_values: list[np.ndarray] = []
        n_symbols = LAST - FIRST + 1
        uni, uni_counts = np.unique(np.concatenate(chars), return_counts=True)
        total = float(uni_counts.sum())
        # interpolated log P of the previous order, as sorted codes + values for vectorised lookup
        prev_codes = np.arange(FIRST, LAST + 1, dtype=np.int64)
        counts_all = np.zeros(n_symbols)
        counts_all[uni.astype(np.int64) - FIRST] = uni_counts
        prev_p = (counts_all + 1) / (total + n_symbols)
        unk = math.log(1 / (total + n_symbols))
        logp_keys.append(prev_codes)
        logp_values.append(np.log(prev_p))
        for n in range(2, order + 1):
            grams = np.concatenate([_ngram_codes(c, n) for c in chars])
            codes, counts = np.unique(grams, return_counts=True)
            ctx = codes >> BITS
            # per context: total count N(c) and distinct followers T(c) (sorted codes: sorted contexts)
            ctx_u, start, distinct = np.unique(ctx, return_index=True, return_counts=True)
            n_ctx = np.add.reduceat(counts, start).astype(np.float64)
            lam = n_ctx / (n_ctx + distinct)
            idx = np.searchsorted(ctx_u, ctx)
            lower = codes & ((1 << (BITS * (n - 1))) - 1)
            lower_p = prev_p[np.searchsorted(prev_codes, lower)]
            p = lam[idx] * counts / n_ctx[idx] + (1 - lam[idx]) * lower_p
            keep = counts >= min_count
            logp_keys.append(codes[keep])
            logp_values.append(np.log(p[keep]))
            kept_ctx = np.unique(ctx[keep])
            backoff_keys.append(kept_ctx)
            backoff_values.append(np.log(1 - lam[np.searchsorted(ctx_u, kept_ctx)]))
            prev_codes, prev_p = codes, p
        tables = NgramTables(
            np.concatenate(logp_keys),
            np.concatenate(logp_values).astype(np.float64),
            np.concatenate(backoff_keys) if backoff_keys else np.zeros(0, np.int64),
            np.concatenate(backoff_values).astype(np.float64) if backoff_values else np.zeros(0),
        )
        return cls(order=order, tables=tables, unk_logp=unk)

    def save(self, path: Path) -> None:
        """Write ``path`` (``.npz``): codes as int64 and log probabilities as float32."""
        lk, lv, bk, bv = self.tables.arrays()
        lv, bv = lv.astype(np.float32), bv.astype(np.float32)
        meta = np.array([self.order, self.unk_logp], np.float64)
        with path.open("wb") as f:
            np.savez_compressed(
                f, logp_keys=lk, logp_values=lv, backoff_keys=bk, backoff_values=bv, meta=meta
            )

    @classmethod
    def load(cls, path: Path) -> CharNgramLM:
        with np.load(path, allow_pickle=False) as z:
            order, unk = z["meta"].tolist()
            tables = NgramTables(z["logp_keys"], z["logp_values"], z["backoff_keys"], z["backoff_values"])
        return cls(order=int(order), tables=tables, unk_logp=float(unk))

    def __len__(self) -> int:
        return len(self.tables)

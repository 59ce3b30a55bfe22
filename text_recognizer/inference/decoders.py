"""Decoding methods over the model runtime (numpy only): ``attention``, ``ctc`` and ``ctc_lm``.

``attention`` runs the Transformer decoder greedily with its key/value cache; ``ctc`` reads the auxiliary CTC
head on the encoder (greedy: one encoder pass, no loop); ``ctc_lm`` is CTC prefix beam search with the
character language model (:mod:`text_recognizer.inference.beam_search`). Staging measures them on synthetic
validation lines through the predictor and records the best as the manifest's default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from text_recognizer.inference.beam_search import BeamConfig, ctc_beam_search, log_softmax
from text_recognizer.inference.char_lm import CharNgramLM
from text_recognizer.inference.manifest import DECODERS, PAD_WIDTH_MULTIPLE, ArtifactError
from text_recognizer.inference.runtime import OnnxModel

#: lines decoded together
BATCH_SIZE = 16

#: per line: token ids (characters only) and one probability per token
Decoded = tuple[list[int], list[float]]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def line_confidence(probs: list[float]) -> float:
    """A line's confidence: the geometric mean of its tokens' probabilities (0 for an empty line)."""
    return float(np.exp(np.log(np.clip(probs, 1e-9, 1.0)).mean())) if probs else 0.0


def greedy_decode(
    model: OnnxModel, images: np.ndarray, max_len: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy decoding with the key/value cache.

    Args:
        images: float32 ``[B, 1, H, W]``.
    Returns:
        token ids ``[B, T]`` (padded with ``pad_id`` after ``</s>``) and the probability of each chosen
        token ``[B, T]`` (1 after ``</s>``).
    """
    s = model.sizes
    b = images.shape[0]
    enc = model.encode(images)
    ck, cv = enc["cross_k"], enc["cross_v"]
    pk, pv = model.empty_cache(b)
    token = np.full((b, 1), s.bos_id, dtype=np.int64)
    done = np.zeros(b, dtype=bool)
    ids, probs = [], []
    for step in range(max_len or s.max_len):
        logits, pk, pv = model.step(token, step, ck, cv, pk, pv)
        p = softmax(logits)
        nxt = p.argmax(axis=1)
        best = p[np.arange(b), nxt]
        nxt = np.where(done, s.pad_id, nxt)
        ids.append(nxt)
        probs.append(np.where(done, 1.0, best))
        done |= nxt == s.eos_id
        token = nxt[:, None].astype(np.int64)
        if done.all():
            break
    return np.stack(ids, axis=1), np.stack(probs, axis=1)


def ctc_greedy(logits: np.ndarray, blank: int) -> list[Decoded]:
    """Best path of CTC logits ``[B, T, V]``: collapse repeats, drop blanks.

    Returns, per row, the token ids and each token's probability (the best frame of its run).
    """
    probs = softmax(logits)
    best = probs.argmax(axis=-1)
    out = []
    for b in range(best.shape[0]):
        ids: list[int] = []
        ps: list[float] = []
        prev = blank
        for t, k in enumerate(best[b].tolist()):
            p = float(probs[b, t, k])
            if k != blank and k == prev and ps:
                ps[-1] = max(ps[-1], p)
            elif k != blank:
                ids.append(k)
                ps.append(p)
            prev = k
        out.append((ids, ps))
    return out


def available_decoders(model: OnnxModel, lm: CharNgramLM | None) -> list[str]:
    """The decoders ``model`` can run: ``attention``; ``ctc`` with a CTC head; ``ctc_lm`` with an LM too."""
    return [d for d in DECODERS if d == "attention" or (model.has_ctc and (d == "ctc" or lm is not None))]


@dataclass(frozen=True)
class LineDecoder:
    """One decoding method and what it needs: the language model and beam weights (``ctc_lm``).

    Attributes:
        chars: the string of each token id, for the language model (``"\\x00"`` for special tokens).
    """

    method: str
    lm: CharNgramLM | None = None
    beam: BeamConfig = field(default_factory=BeamConfig)
    chars: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.method not in DECODERS:
            raise ValueError(f"unknown decoder {self.method!r}: expected one of {', '.join(DECODERS)}")

    def __call__(self, model: OnnxModel, images: np.ndarray) -> list[Decoded]:
        """Read a batch ``[B, 1, H, W]``; for ``attention`` the last probability is that of ``</s>``."""
        blank = model.sizes.pad_id
        if self.method in ("ctc", "ctc_lm"):
            if not model.has_ctc:
                raise ArtifactError("this artifact has no CTC head; use the attention decoder")
            logits = model.encode(images)["ctc_logits"]
            return ctc_greedy(logits, blank) if self.method == "ctc" else self.beam_search(logits, blank)
        ids, probs = greedy_decode(model, images)
        eos = model.sizes.eos_id
        out = []
        for row_ids, row_probs in zip(ids.tolist(), probs.tolist(), strict=True):
            n = row_ids.index(eos) if eos in row_ids else len(row_ids)
            out.append((row_ids[:n], row_probs[: n + 1]))
        return out

    def beam_search(self, logits: np.ndarray, blank: int) -> list[Decoded]:
        """CTC logits ``[B, T, V]`` -> beam search with the language model, per row.

        The probabilities returned (for the confidence) are those of the greedy path: how sure the image
        model is of what it saw, whatever the language model then preferred. Lines read with a confidence
        below ``beam.min_confidence`` keep the greedy reading.
        """
        if self.lm is None:
            raise ArtifactError(
                "this artifact has no language model (lm.npz); use the ctc or attention decoder"
            )
        greedy = ctc_greedy(logits, blank)
        logp = log_softmax(logits.astype(np.float64))
        out = []
        for b, (ids, probs) in enumerate(greedy):
            if line_confidence(probs) >= self.beam.min_confidence:
                ids = ctc_beam_search(logp[b], list(self.chars), blank, self.lm, self.beam)
            out.append((ids, probs))
        return out


def pad_batch(
    lines: list[np.ndarray], method: str, max_width: int, multiple: int = PAD_WIDTH_MULTIPLE
) -> np.ndarray:
    """Prepared lines ``[h, w_i]`` -> batch ``[B, 1, h, W]``, background (0) padded on the right.

    The attention decoder reads best with the right margin it saw in training (lines padded within random
    batches), so it gets every line padded to ``max_width`` (on synthetic validation lines: CER 0.17 with
    tight padding, 0.11 padded to the full width). CTC is indifferent to padding, so its batches are only
    as wide as their widest line.
    """
    widest = max(x.shape[1] for x in lines)
    w = max(widest, max_width) if method == "attention" else widest
    w = (w + multiple - 1) // multiple * multiple
    batch = np.zeros((len(lines), 1, lines[0].shape[0], w), np.float32)
    for i, x in enumerate(lines):
        batch[i, 0, :, : x.shape[1]] = x
    return batch


@dataclass(frozen=True)
class LineReader:
    """Prepared lines ``[h, w_i]`` -> decoded lines, in batches of similar width, results in input order.

    Sorting by width keeps the padding decoded small (CTC); see :func:`pad_batch` for the attention decoder.
    """

    decoder: LineDecoder
    max_width: int
    batch_size: int = BATCH_SIZE
    pad_multiple: int = PAD_WIDTH_MULTIPLE

    def __call__(self, model: OnnxModel, lines: list[np.ndarray]) -> list[Decoded]:
        out: list[Decoded] = [([], [])] * len(lines)
        order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = pad_batch([lines[i] for i in idx], self.decoder.method, self.max_width, self.pad_multiple)
            for i, result in zip(idx, self.decoder(model, batch), strict=True):
                out[i] = result
        return out

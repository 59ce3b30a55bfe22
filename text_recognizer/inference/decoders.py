"""Decoding methods over the model runtime (numpy only): ``attention``, ``ctc`` and ``ctc_lm``.

``attention`` runs the Transformer decoder greedily with its key/value cache; ``ctc`` reads the auxiliary CTC
head on the encoder (greedy: one encoder pass, no loop); ``ctc_lm`` is CTC prefix beam search with the
character language model (:mod:`text_recognizer.inference.beam_search`). Staging measures them on synthetic
validation lines through the predictor and records the best as the manifest's default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from text_recognizer.inference.beam_search import BeamConfig, ctc_beam_search_aligned, log_softmax
from text_recognizer.inference.char_lm import CharNgramLM
from text_recognizer.inference.manifest import DECODERS, PAD_WIDTH_MULTIPLE, ArtifactError
from text_recognizer.inference.runtime import OnnxModel

#: lines decoded together
BATCH_SIZE = 16


class Decoded(NamedTuple):
    """One decoded line.

    Attributes:
        ids: token ids (characters only).
        probs: one probability per token (``attention``: and a last one, of ``</s>``).
        spans: per token, the columns ``[x0, x1)`` of the model input where the CTC alignment emits it
            (each frame of the CTC head covers ``stride`` columns); empty for ``attention`` (no alignment).
    """

    ids: list[int]
    probs: list[float]
    spans: Sequence[tuple[int, int]] = ()


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
    ck, cv = model.cross_keys_values(model.encode(images))
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


def char_spans(
    probs: np.ndarray, ids: list[int], starts: list[int], stride: int
) -> tuple[list[float], list[tuple[int, int]]]:
    """Per token of an aligned line: its probability and its columns.

    Args:
        probs: CTC probabilities of the line ``[T, V]``.
        ids: the tokens, ``starts``: the frame where each is first emitted (increasing).
        stride: model input columns per frame.
    Returns:
        each token's best probability over the frames of its run (from its start, while it stays the most
        probable) and its columns ``[start * stride, (end + 1) * stride)``, ``end`` the last frame of the run.
    """
    best = probs.argmax(axis=-1).tolist()  # read one frame at a time: a list, not numpy scalars
    out_p: list[float] = []
    spans: list[tuple[int, int]] = []
    limit = probs.shape[0]
    for i, (k, t0) in enumerate(zip(ids, starts, strict=True)):
        stop = starts[i + 1] if i + 1 < len(starts) else limit
        end = t0
        while end + 1 < stop and best[end + 1] == k:
            end += 1
        # most runs are one frame long: its value, without a reduction over a slice
        out_p.append(float(probs[t0, k] if end == t0 else probs[t0 : end + 1, k].max()))
        spans.append((t0 * stride, (end + 1) * stride))
    return out_p, spans


def ctc_greedy(logits: np.ndarray, blank: int, stride: int = 1) -> list[Decoded]:
    """Best path of CTC logits ``[B, T, V]``: collapse repeats, drop blanks.

    Returns, per row, the token ids, each token's probability (the best frame of its run) and its columns
    (``stride`` model input columns a frame).
    """
    probs = softmax(logits)
    best = probs.argmax(axis=-1)
    out = []
    for b in range(best.shape[0]):
        row = best[b]
        keep = (row != blank) & np.concatenate([[True], row[1:] != row[:-1]])
        starts = np.flatnonzero(keep).tolist()
        ids = row[starts].tolist()
        ps, spans = char_spans(probs[b], ids, starts, stride)
        out.append(Decoded(ids, ps, spans))
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
            stride = images.shape[3] // logits.shape[1]
            if self.method == "ctc":
                return ctc_greedy(logits, blank, stride)
            return self.beam_search(logits, blank, stride)
        ids, probs = greedy_decode(model, images)
        eos = model.sizes.eos_id
        out = []
        for row_ids, row_probs in zip(ids.tolist(), probs.tolist(), strict=True):
            n = row_ids.index(eos) if eos in row_ids else len(row_ids)
            out.append(Decoded(row_ids[:n], row_probs[: n + 1]))
        return out

    def beam_search(self, logits: np.ndarray, blank: int, stride: int = 1) -> list[Decoded]:
        """CTC logits ``[B, T, V]`` -> beam search with the language model, per row.

        Each character's probability is the image model's (:func:`char_spans` over the frames of the beam's
        alignment), so a character the language model put where the image model saw another one is unsure.
        Lines read with a confidence (greedy path) below ``beam.min_confidence`` keep the greedy reading.
        """
        if self.lm is None:
            raise ArtifactError(
                "this artifact has no language model (lm.npz); use the ctc or attention decoder"
            )
        greedy = ctc_greedy(logits, blank, stride)
        logp = log_softmax(logits.astype(np.float64))
        probs = np.exp(logp)
        out = []
        for b, decoded in enumerate(greedy):
            if line_confidence(decoded.probs) >= self.beam.min_confidence:
                ids, starts = ctc_beam_search_aligned(logp[b], list(self.chars), blank, self.lm, self.beam)
                decoded = Decoded(ids, *char_spans(probs[b], ids, starts, stride))
            out.append(decoded)
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
        out: list[Decoded] = [Decoded([], [])] * len(lines)
        order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = pad_batch([lines[i] for i in idx], self.decoder.method, self.max_width, self.pad_multiple)
            for i, result in zip(idx, self.decoder(model, batch), strict=True):
                out[i] = result
        return out

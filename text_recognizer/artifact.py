"""The staged artifact: the only bridge between training and serving (onnxruntime and numpy only).

An artifact folder holds:

- ``encoder.onnx``: image ``[B, 1, H, W]`` -> cross-attention keys and values ``[L, B, N, S, E]`` and,
  when the model has a CTC head, CTC logits ``[B, W/4, V]``
- ``decoder_step.onnx``: (token ``[B, 1]``, position ``[1]``, cross keys/values, past keys/values
  ``[L, B, N, T, E]``) -> (logits ``[B, V]``, present keys/values ``[L, B, N, T+1, E]``)
- ``lm.npz`` (optional): a character n-gram model of the training text for CTC beam search
  (:mod:`text_recognizer.char_lm`).
- ``manifest.json``: vocabulary, preprocessing, model config, metrics, training data spec, code version and
  the sha256 of each file.

:mod:`text_recognizer.staging` writes it; :mod:`text_recognizer.predictor` reads it. Both use
:func:`decode` so that the checks at staging time test the very code that serves. Two decoders are
available: ``attention`` (the Transformer decoder, greedy with the key/value cache), ``ctc`` (the
auxiliary CTC head on the encoder, greedy: one encoder pass, no loop) and ``ctc_lm`` (CTC prefix beam search
with the character language model). Staging measures them on synthetic validation lines and records the best
as the default in the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from text_recognizer.beam_search import BeamConfig, ctc_beam_search, log_softmax
from text_recognizer.char_lm import CharNgramLM

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder_step.onnx"
LM_FILE = "lm.npz"
MANIFEST_FILE = "manifest.json"
DECODERS: tuple[str, ...] = ("attention", "ctc", "ctc_lm")
FORMAT_VERSION = 1


class ArtifactError(RuntimeError):
    """A missing, incomplete or corrupt artifact folder."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path, verify: bool = True) -> dict[str, Any]:
    """Read ``manifest.json`` and (by default) check every listed file's sha256."""
    path = folder / MANIFEST_FILE
    if not path.exists():
        raise ArtifactError(
            f"{folder}: no {MANIFEST_FILE}; stage a model with `text-recognizer stage <checkpoint>` "
            "or point --model / TEXT_RECOGNIZER_MODEL at an artifact folder"
        )
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: not valid JSON ({e})") from e
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format_version {manifest.get('format_version')} != {FORMAT_VERSION}")
    if verify:
        for name, digest in manifest.get("files", {}).items():
            f = folder / name
            if not f.exists():
                raise ArtifactError(f"{folder}: {name} listed in the manifest is missing")
            if sha256_file(f) != digest:
                raise ArtifactError(f"{f}: sha256 does not match the manifest (corrupt or replaced file)")
    return manifest


@dataclass
class OnnxModel:
    """The two ONNX sessions of an artifact and the sizes the decoding loop needs."""

    encoder: Any
    decoder: Any
    n_layers: int
    n_heads: int
    head_dim: int
    bos_id: int
    eos_id: int
    pad_id: int
    max_len: int
    #: the string of each token id, for the language model ("\x00" for special tokens)
    chars: list[str] = field(default_factory=list)
    lm: CharNgramLM | None = None
    beam: BeamConfig = field(default_factory=BeamConfig)

    @classmethod
    def load(cls, folder: Path, manifest: dict[str, Any], threads: int = 0) -> OnnxModel:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        m = manifest["model"]
        try:
            enc = ort.InferenceSession(str(folder / ENCODER_FILE), opts, providers=providers)
            dec = ort.InferenceSession(str(folder / DECODER_FILE), opts, providers=providers)
        except Exception as e:
            raise ArtifactError(f"{folder}: cannot load the ONNX models ({e})") from e
        lm = None
        if LM_FILE in manifest.get("files", {}):
            try:
                lm = CharNgramLM.load(folder / LM_FILE)
            except Exception as e:
                raise ArtifactError(f"{folder / LM_FILE}: cannot load the language model ({e})") from e
        beam = BeamConfig(**manifest.get("decoding", {}).get("ctc_lm", {}).get("config", {}))
        return cls(
            enc,
            dec,
            m["n_layers"],
            m["n_heads"],
            m["d_model"] // m["n_heads"],
            m["bos_id"],
            m["eos_id"],
            m["pad_id"],
            m["max_len"],
            [c if len(c) == 1 else "\x00" for c in manifest.get("vocab", [])],
            lm,
            beam,
        )

    @property
    def has_ctc(self) -> bool:
        return "ctc_logits" in {o.name for o in self.encoder.get_outputs()}

    @property
    def decoders(self) -> list[str]:
        """The decoders this artifact can run."""
        return [
            d for d in DECODERS if d == "attention" or (self.has_ctc and (d == "ctc" or self.lm is not None))
        ]

    def encode(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``images [B, 1, H, W]`` float32 -> ``cross_k``, ``cross_v`` ``[L, B, N, S, E]`` (and ``ctc_logits``
        ``[B, W/4, V]``)."""
        outs = self.encoder.run(None, {"images": images.astype(np.float32, copy=False)})
        return {o.name: x for o, x in zip(self.encoder.get_outputs(), outs, strict=True)}

    def step(
        self, token: np.ndarray, position: int, ck: np.ndarray, cv: np.ndarray, pk: np.ndarray, pv: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decoding step: ``token [B, 1]`` -> logits ``[B, V]`` and present keys/values."""
        logits, k, v = self.decoder.run(
            None,
            {
                "token": token,
                "position": np.array([position], dtype=np.int64),
                "cross_k": ck,
                "cross_v": cv,
                "past_k": pk,
                "past_v": pv,
            },
        )
        return logits, k, v


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
    b = images.shape[0]
    enc = model.encode(images)
    ck, cv = enc["cross_k"], enc["cross_v"]
    shape = (model.n_layers, b, model.n_heads, 0, model.head_dim)
    pk, pv = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    token = np.full((b, 1), model.bos_id, dtype=np.int64)
    done = np.zeros(b, dtype=bool)
    ids, probs = [], []
    for step in range(max_len or model.max_len):
        logits, pk, pv = model.step(token, step, ck, cv, pk, pv)
        p = softmax(logits)
        nxt = p.argmax(axis=1)
        best = p[np.arange(b), nxt]
        nxt = np.where(done, model.pad_id, nxt)
        ids.append(nxt)
        probs.append(np.where(done, 1.0, best))
        done |= nxt == model.eos_id
        token = nxt[:, None].astype(np.int64)
        if done.all():
            break
    return np.stack(ids, axis=1), np.stack(probs, axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def ctc_greedy(logits: np.ndarray, blank: int) -> list[tuple[list[int], list[float]]]:
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


def line_confidence(probs: list[float]) -> float:
    """A line's confidence: the geometric mean of its tokens' probabilities (0 for an empty line)."""
    return float(np.exp(np.log(np.clip(probs, 1e-9, 1.0)).mean())) if probs else 0.0


def ctc_lm(model: OnnxModel, logits: np.ndarray) -> list[tuple[list[int], list[float]]]:
    """CTC logits ``[B, T, V]`` -> beam search with the language model, per row.

    The probabilities returned (for the confidence) are those of the greedy path: how sure the image model
    is of what it saw, whatever the language model then preferred. Lines read with a confidence below
    ``model.beam.min_confidence`` keep the greedy reading.
    """
    if model.lm is None:
        raise ArtifactError("this artifact has no language model (lm.npz); use the ctc or attention decoder")
    greedy = ctc_greedy(logits, blank=model.pad_id)
    logp = log_softmax(logits.astype(np.float64))
    out = []
    for b, (ids, probs) in enumerate(greedy):
        if line_confidence(probs) >= model.beam.min_confidence:
            ids = ctc_beam_search(logp[b], model.chars, model.pad_id, model.lm, model.beam)
        out.append((ids, probs))
    return out


def decode(model: OnnxModel, images: np.ndarray, method: str) -> list[tuple[list[int], list[float]]]:
    """Read a batch ``[B, 1, H, W]`` with the ``attention``, ``ctc`` or ``ctc_lm`` decoder.

    Returns, per image, the token ids (characters only) and one probability per token; for ``attention`` the
    last probability is that of ``</s>``.
    """
    if method not in DECODERS:
        raise ValueError(f"unknown decoder {method!r}: expected one of {', '.join(DECODERS)}")
    if method in ("ctc", "ctc_lm"):
        if not model.has_ctc:
            raise ArtifactError("this artifact has no CTC head; use the attention decoder")
        logits = model.encode(images)["ctc_logits"]
        return ctc_greedy(logits, blank=model.pad_id) if method == "ctc" else ctc_lm(model, logits)
    ids, probs = greedy_decode(model, images)
    out = []
    for row_ids, row_probs in zip(ids.tolist(), probs.tolist(), strict=True):
        n = row_ids.index(model.eos_id) if model.eos_id in row_ids else len(row_ids)
        out.append((row_ids[:n], row_probs[: n + 1]))
    return out


def pad_batch(lines: list[np.ndarray], method: str, max_width: int, multiple: int = 8) -> np.ndarray:
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


def read_lines(
    model: OnnxModel,
    lines: list[np.ndarray],
    method: str,
    max_width: int,
    batch_size: int = 16,
    multiple: int = 8,
) -> list[tuple[list[int], list[float]]]:
    """Decode prepared lines ``[h, w_i]`` in batches of similar width; results in input order.

    Sorting by width keeps the padding decoded small (CTC); see :func:`pad_batch` for the attention decoder.
    """
    out: list[tuple[list[int], list[float]]] = [([], [])] * len(lines)
    order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = pad_batch([lines[i] for i in idx], method, max_width, multiple)
        for i, result in zip(idx, decode(model, batch, method), strict=True):
            out[i] = result
    return out

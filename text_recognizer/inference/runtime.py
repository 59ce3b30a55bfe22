"""The model runtime: the ONNX sessions of an artifact (onnxruntime and numpy only).

Shapes as in :mod:`text_recognizer.inference.manifest`: the encoder reads images ``[B, 1, H, W]``; the
cross session turns its memory into the attention decoder's cross-attention keys and values; the decoder-step
session advances the Transformer decoder by one token with its key/value cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from text_recognizer.inference.manifest import (
    CROSS_FILE,
    DECODER_FILE,
    ENCODER_FILE,
    ArtifactError,
    ModelPart,
)


@dataclass(frozen=True)
class OnnxModel:
    """The encoder, cross and decoder-step sessions with the sizes of the model (thread-safe: sessions may be
    shared by concurrent requests)."""

    encoder: Any
    step_session: Any
    sizes: ModelPart
    #: ``memory`` -> ``cross_k``, ``cross_v`` (:data:`CROSS_FILE`); None where the encoder returns them itself
    #: (an artifact of format 1 or 2, whose CTC decoders computed them for nothing: 0.6 ms of a line's 6.4)
    cross_session: Any = None

    @classmethod
    def load(cls, folder: Path, sizes: ModelPart, threads: int = 0) -> OnnxModel:
        """Open ``folder``'s ONNX files on the CPU (``threads`` 0: onnxruntime's default).

        Raises:
            ArtifactError: a file is missing or not a loadable ONNX model.
        """
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        try:
            enc = ort.InferenceSession(str(folder / ENCODER_FILE), opts, providers=providers)
            dec = ort.InferenceSession(str(folder / DECODER_FILE), opts, providers=providers)
            own_cross = "cross_k" in {o.name for o in enc.get_outputs()}
            cross = (
                None
                if own_cross
                else ort.InferenceSession(str(folder / CROSS_FILE), opts, providers=providers)
            )
        except Exception as e:
            raise ArtifactError(f"{folder}: cannot load the ONNX models ({e})") from e
        return cls(enc, dec, sizes, cross)

    @property
    def has_ctc(self) -> bool:
        return "ctc_logits" in {o.name for o in self.encoder.get_outputs()}

    def encode(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``images [B, 1, H, W]`` float32 -> ``memory`` ``[B, S, D]`` (format 2: ``cross_k``, ``cross_v``
        ``[L, B, N, S, E]``) and ``ctc_logits`` ``[B, W/4, V]`` when the model has a CTC head."""
        outs = self.encoder.run(None, {"images": images.astype(np.float32, copy=False)})
        return {o.name: x for o, x in zip(self.encoder.get_outputs(), outs, strict=True)}

    def cross_keys_values(self, encoded: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """What :meth:`encode` returned -> the cross-attention keys and values ``[L, B, N, S, E]`` each."""
        if self.cross_session is None:
            return encoded["cross_k"], encoded["cross_v"]
        ck, cv = self.cross_session.run(None, {"memory": encoded["memory"]})
        return ck, cv

    def empty_cache(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Self-attention keys and values of no tokens yet: ``[L, B, N, 0, E]`` each."""
        s = self.sizes
        shape = (s.n_layers, batch, s.n_heads, 0, s.head_dim)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    def step(
        self, token: np.ndarray, position: int, ck: np.ndarray, cv: np.ndarray, pk: np.ndarray, pv: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decoding step: ``token [B, 1]`` -> logits ``[B, V]`` and present keys/values."""
        logits, k, v = self.step_session.run(
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

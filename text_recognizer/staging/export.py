"""Torch model -> ``encoder.onnx`` + ``cross_kv.onnx`` + ``decoder_step.onnx``, and the check that onnxruntime
reproduces it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from text_recognizer.data.base import Sample
from text_recognizer.images import prepare_line
from text_recognizer.inference.decoders import greedy_decode, pad_batch
from text_recognizer.inference.manifest import CROSS_FILE, DECODER_FILE, ENCODER_FILE, Parity
from text_recognizer.inference.runtime import OnnxModel
from text_recognizer.models.resnet_transformer import ResNetTransformer

log = logging.getLogger(__name__)

#: maximum absolute difference allowed between torch and onnxruntime logits
LOGIT_TOLERANCE = 1e-3
OPSET = 17


class ParityError(RuntimeError):
    """The exported model does not reproduce the torch model."""


class _Encoder(nn.Module):
    def __init__(self, model: ResNetTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        memory, columns = self.model.encode(images)
        if self.model.ctc is None:
            return (memory,)
        return memory, self.model.ctc_logits(columns)


class _Cross(nn.Module):
    """The attention decoder's cross-attention keys and values, a graph of their own: onnxruntime runs every
    node of a session whatever outputs are asked for, and the CTC decoders have no use for them."""

    def __init__(self, model: ResNetTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.cross_keys_values(memory)


class _Step(nn.Module):
    def __init__(self, model: ResNetTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, token: Tensor, position: Tensor, ck: Tensor, cv: Tensor, pk: Tensor, pv: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.decode_step(token, position, ck, cv, pk, pv)


def _export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    axes: dict[str, dict[int, str]],
) -> None:
    """One graph: ``module(*args)`` traced to ``path`` with named inputs, outputs and dynamic axes."""
    torch.onnx.export(
        module,
        args,
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes=axes,
    )


def export_onnx(model: ResNetTransformer, out: Path, height: int) -> None:
    """Write ``encoder.onnx``, ``cross_kv.onnx`` and ``decoder_step.onnx`` with dynamic batch, width and cache
    length."""
    model = model.eval().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    c = model.cfg
    images = torch.rand(2, 1, height, 96)
    with torch.no_grad():
        memory = _Encoder(model)(images)[0]
        ck, cv = _Cross(model)(memory)
    ctc = model.ctc is not None
    memory_axes = {0: "batch", 1: "positions"}
    _export(
        _Encoder(model),
        (images,),
        out / ENCODER_FILE,
        ["images"],
        ["memory"] + (["ctc_logits"] if ctc else []),
        {
            "images": {0: "batch", 3: "width"},
            "memory": memory_axes,
            **({"ctc_logits": {0: "batch", 1: "frames"}} if ctc else {}),
        },
    )
    kv_axes = {1: "batch", 3: "positions"}
    _export(
        _Cross(model),
        (memory,),
        out / CROSS_FILE,
        ["memory"],
        ["cross_k", "cross_v"],
        {"memory": memory_axes, "cross_k": kv_axes, "cross_v": kv_axes},
    )
    e = c.d_model // c.n_heads
    past = torch.zeros(c.n_layers, 2, c.n_heads, 3, e)
    args = (torch.full((2, 1), c.bos_id, dtype=torch.long), torch.tensor([3]), ck, cv, past, past.clone())
    cache_axes = {1: "batch", 3: "steps"}
    _export(
        _Step(model),
        args,
        out / DECODER_FILE,
        ["token", "position", "cross_k", "cross_v", "past_k", "past_v"],
        ["logits", "present_k", "present_v"],
        {
            "token": {0: "batch"},
            "cross_k": kv_axes,
            "cross_v": kv_axes,
            "past_k": cache_axes,
            "past_v": cache_axes,
            "logits": {0: "batch"},
            "present_k": {1: "batch", 3: "steps1"},
            "present_v": {1: "batch", 3: "steps1"},
        },
    )


def synthetic_val_lines(n: int, seed: int) -> list[Sample]:
    """``n`` rendered line images (uint8 ``[H, W]``) of the synthetic validation split, with their texts.

    Raises:
        RuntimeError: the fonts or text corpus are missing (``text-recognizer data fetch``).
    """
    from text_recognizer.data.synth.dataset import SynthSource

    src = SynthSource(kind="line", split="val", size=n, seed=seed)
    return [src[i] for i in range(n)]


def parity_inputs(height: int, max_width: int, n: int = 6) -> tuple[np.ndarray, str]:
    """A batch ``[n, 1, height, W]`` of real line images from the synthetic validation split when fonts are
    present, else of random noise; and which it is."""
    try:
        samples = synthetic_val_lines(n, seed=12345)
        lines = [prepare_line(s.image, height, max_width) for s in samples]
        kind = "synthetic validation lines"
    except Exception as e:
        log.warning("parity check on random images (%s)", e)
        rng = np.random.default_rng(0)
        lines = [rng.random((height, int(w)), dtype=np.float32) for w in rng.integers(64, max_width, n)]
        kind = "random images"
    return pad_batch(lines, "ctc", max_width), kind


def check_parity(model: ResNetTransformer, onnx: OnnxModel, images: np.ndarray, inputs: str) -> Parity:
    """Compare torch and onnxruntime on ``images [B, 1, H, W]``: first-step decoder logits, CTC logits, and
    whole greedy outputs.

    Raises:
        ParityError: logits differ by more than :data:`LOGIT_TOLERANCE`, or greedy outputs differ.
    """
    model.eval()
    x = torch.from_numpy(images)
    with torch.no_grad():
        memory, columns = model.encode(x)
        ck, cv = model.cross_keys_values(memory)
        pk, pv = model.empty_cache(x.shape[0])
        tok = torch.full((x.shape[0], 1), model.cfg.bos_id, dtype=torch.long)
        logits_t, _, _ = model.decode_step(tok, torch.tensor([0]), ck, cv, pk, pv)
        ids_t = model.greedy_decode(x).numpy()
    enc = onnx.encode(images)
    empty_k, empty_v = onnx.empty_cache(images.shape[0])
    logits_o, _, _ = onnx.step(tok.numpy(), 0, *onnx.cross_keys_values(enc), empty_k, empty_v)
    diff = float(np.abs(logits_o - logits_t.numpy()).max())
    if model.ctc is not None:
        with torch.no_grad():
            ctc_t = model.ctc_logits(columns).numpy()
        diff = max(diff, float(np.abs(enc["ctc_logits"] - ctc_t).max()))
    ids_o, _ = greedy_decode(onnx, images)
    n = min(ids_t.shape[1], ids_o.shape[1])
    same = ids_t.shape == ids_o.shape and bool((ids_t[:, :n] == ids_o[:, :n]).all())
    result = Parity(
        max_abs_logit_diff=diff,
        tolerance=LOGIT_TOLERANCE,
        greedy_identical=same,
        n_images=int(images.shape[0]),
        inputs=inputs,
    )
    if diff > LOGIT_TOLERANCE or not same:
        raise ParityError(f"ONNX export differs from torch: {result}")
    return result

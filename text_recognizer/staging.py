"""Checkpoint or registered model version -> ONNX artifact with a manifest, checked for parity with torch.

``text-recognizer stage runs/checkpoints/line-.../best.ckpt --name line-default``
``text-recognizer stage line-recognizer@candidate``
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from text_recognizer.artifact import (
    DECODER_FILE,
    ENCODER_FILE,
    FORMAT_VERSION,
    LM_FILE,
    MANIFEST_FILE,
    OnnxModel,
    greedy_decode,
    pad_batch,
    read_lines,
    sha256_file,
)
from text_recognizer.beam_search import BeamConfig
from text_recognizer.char_lm import CharNgramLM
from text_recognizer.data.base import Sample
from text_recognizer.images import image_stats, page_lines
from text_recognizer.metrics import error_rate
from text_recognizer.models.resnet_transformer import ResNetTransformer
from text_recognizer.training.lit_module import LitRecognizer
from text_recognizer.training.tracking import TrackingConfig, code_version, resolve_checkpoint
from text_recognizer.vocab import Vocabulary

log = logging.getLogger(__name__)

#: maximum absolute difference allowed between torch and onnxruntime logits
LOGIT_TOLERANCE = 1e-3
OPSET = 17


class ParityError(RuntimeError):
    """The exported model does not reproduce the torch model."""


@dataclass(frozen=True)
class LMConfig:
    """The character language model staged beside a CTC model (``order=0``: none)."""

    order: int = 6
    min_count: int = 2
    #: read at most this many characters of training text (None: all of it, about 10 M)
    max_chars: int | None = None
    #: (alpha, beta) pairs tried on the synthetic validation lines; the lowest CER wins
    grid: tuple[tuple[float, float], ...] = tuple(
        (a, b) for a in (0.4, 0.7, 1.0) for b in (0.0, 1.0, 2.0, 3.0)
    )


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


class _Encoder(nn.Module):
    def __init__(self, model: ResNetTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        memory, columns = self.model.encode(images)
        ck, cv = self.model.cross_keys_values(memory)
        if self.model.ctc is None:
            return ck, cv
        return ck, cv, self.model.ctc_logits(columns)


class _Step(nn.Module):
    def __init__(self, model: ResNetTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, token: Tensor, position: Tensor, ck: Tensor, cv: Tensor, pk: Tensor, pv: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.decode_step(token, position, ck, cv, pk, pv)


def export_onnx(model: ResNetTransformer, out: Path, height: int) -> None:
    """Write ``encoder.onnx`` and ``decoder_step.onnx`` with dynamic batch, width and cache length."""
    model = model.eval().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    c = model.cfg
    images = torch.rand(2, 1, height, 96)
    with torch.no_grad():
        ck, cv = _Encoder(model)(images)[:2]
    outputs = ["cross_k", "cross_v"] + (["ctc_logits"] if model.ctc is not None else [])
    torch.onnx.export(
        _Encoder(model),
        (images,),
        str(out / ENCODER_FILE),
        dynamo=False,
        opset_version=OPSET,
        input_names=["images"],
        output_names=outputs,
        dynamic_axes={
            "images": {0: "batch", 3: "width"},
            "cross_k": {1: "batch", 3: "positions"},
            "cross_v": {1: "batch", 3: "positions"},
            **({"ctc_logits": {0: "batch", 1: "frames"}} if model.ctc is not None else {}),
        },
    )
    e = c.d_model // c.n_heads
    past = torch.zeros(c.n_layers, 2, c.n_heads, 3, e)
    args = (torch.full((2, 1), c.bos_id, dtype=torch.long), torch.tensor([3]), ck, cv, past, past.clone())
    cache_axes = {1: "batch", 3: "steps"}
    torch.onnx.export(
        _Step(model),
        args,
        str(out / DECODER_FILE),
        dynamo=False,
        opset_version=OPSET,
        input_names=["token", "position", "cross_k", "cross_v", "past_k", "past_v"],
        output_names=["logits", "present_k", "present_v"],
        dynamic_axes={
            "token": {0: "batch"},
            "cross_k": {1: "batch", 3: "positions"},
            "cross_v": {1: "batch", 3: "positions"},
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


def synthetic_lines(height: int, max_width: int, n: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """``n`` prepared lines ``[height, w]`` from the synthetic validation split, with their texts."""
    from text_recognizer.images import prepare_line

    samples = synthetic_val_lines(n, seed)
    return [prepare_line(s.image, height, max_width) for s in samples], [s.text for s in samples]


def parity_inputs(height: int, max_width: int, n: int = 6) -> tuple[np.ndarray, str]:
    """Real line images from the synthetic validation split when fonts are present, else random noise."""
    try:
        lines, _ = synthetic_lines(height, max_width, n, seed=12345)
        kind = "synthetic validation lines"
    except Exception as e:
        log.warning("parity check on random images (%s)", e)
        rng = np.random.default_rng(0)
        lines = [rng.random((height, int(w)), dtype=np.float32) for w in rng.integers(64, max_width, n)]
        kind = "random images"
    return pad_batch(lines, "ctc", max_width), kind


def choose_decoder(
    onnx: OnnxModel,
    vocab: Vocabulary,
    height: int,
    max_width: int,
    n: int = 192,
    grid: tuple[tuple[float, float], ...] = LMConfig.grid,
) -> dict[str, Any]:
    """Measure each decoder of the artifact on ``n`` synthetic validation lines; the lower CER is the default.

    The images go through the predictor's own preprocessing (:func:`images.page_lines`: ink normalisation,
    line segmentation, crops), so stray specks cut out as extra "lines" count too: a language model with a
    large per-character bonus would read text into them. ``ctc_lm`` is tried with each (alpha, beta) of
    ``grid`` and keeps the best; ``onnx.beam`` is left set to it. Without fonts (no measurement possible) the
    Transformer decoder is the default.
    """
    methods = onnx.decoders
    try:
        samples = synthetic_val_lines(n, seed=2024)
        pages = [page_lines(s.image, height, max_width)[1] for s in samples]
        texts = [s.text for s in samples]
    except Exception as e:
        log.warning("decoder choice not measured (%s): using attention", e)
        return {"default": "attention", "available": methods, "measured_on": None}
    truth = [vocab.normalize(t) for t in texts]
    cer, seconds = {}, {}
    result: dict[str, Any] = {}
    for method in methods:
        configs = [BeamConfig(alpha=a, beta=b) for a, b in grid] if method == "ctc_lm" else [None]
        tried = []
        for cfg in configs:
            if cfg is not None:
                onnx.beam = cfg
            t0 = time.perf_counter()
            preds = _read_pages(onnx, vocab, pages, method, max_width)
            tried.append((error_rate(preds, truth), (time.perf_counter() - t0) / n, cfg))
        best_cer, seconds[method], best_cfg = min(tried, key=lambda x: x[0])
        cer[method] = best_cer
        if best_cfg is not None:
            onnx.beam = best_cfg
            result["ctc_lm"] = {
                "config": best_cfg.to_dict(),
                "grid_cer": {f"alpha={c.alpha},beta={c.beta}": e for e, _, c in tried if c is not None},
            }
    best = min(methods, key=lambda m: cer[m])
    print(f"decoders on {n} synthetic validation lines: CER {cer}, s/line {seconds} -> default {best}")
    return {
        "default": best,
        "available": methods,
        "val_cer": cer,
        "seconds_per_line": seconds,
        "measured_on": f"{n} synthetic validation lines",
        **result,
    }


def _read_pages(
    onnx: OnnxModel, vocab: Vocabulary, pages: list[list[np.ndarray]], method: str, max_width: int
) -> list[str]:
    """Each page's prepared lines read and joined by newlines, as the predictor does."""
    flat = [line for page in pages for line in page]
    texts = [vocab.decode_line(ids) for ids, _ in read_lines(onnx, flat, method, max_width)]
    out, i = [], 0
    for page in pages:
        out.append("\n".join(texts[i : i + len(page)]))
        i += len(page)
    return out


def check_parity(model: ResNetTransformer, onnx: OnnxModel, images: np.ndarray) -> dict[str, Any]:
    """Compare torch and onnxruntime: first-step decoder logits, CTC logits, and whole greedy outputs.

    Raises:
        ParityError: logits differ by more than :data:`LOGIT_TOLERANCE`, or greedy outputs differ.
    """
    model.eval()
    x = torch.from_numpy(images)
    with torch.no_grad():
        memory, _ = model.encode(x)
        ck, cv = model.cross_keys_values(memory)
        pk, pv = model.empty_cache(x.shape[0])
        tok = torch.full((x.shape[0], 1), model.cfg.bos_id, dtype=torch.long)
        logits_t, _, _ = model.decode_step(tok, torch.tensor([0]), ck, cv, pk, pv)
        ids_t = model.greedy_decode(x).numpy()
    enc = onnx.encode(images)
    shape = (onnx.n_layers, images.shape[0], onnx.n_heads, 0, onnx.head_dim)
    empty = np.zeros(shape, np.float32)
    logits_o, _, _ = onnx.step(tok.numpy(), 0, enc["cross_k"], enc["cross_v"], empty, empty.copy())
    diff = float(np.abs(logits_o - logits_t.numpy()).max())
    if model.ctc is not None:
        with torch.no_grad():
            ctc_t = model.ctc_logits(model.encode(x)[1]).numpy()
        diff = max(diff, float(np.abs(enc["ctc_logits"] - ctc_t).max()))
    ids_o, _ = greedy_decode(onnx, images)
    n = min(ids_t.shape[1], ids_o.shape[1])
    same = ids_t.shape == ids_o.shape and bool((ids_t[:, :n] == ids_o[:, :n]).all())
    result = {
        "max_abs_logit_diff": diff,
        "tolerance": LOGIT_TOLERANCE,
        "greedy_identical": same,
        "n_images": int(images.shape[0]),
    }
    if diff > LOGIT_TOLERANCE or not same:
        raise ParityError(f"ONNX export differs from torch: {result}")
    return result


def _image_stats(n: int = 64) -> dict[str, Any]:
    """Reference statistics of raw training images (size, brightness, polarity) for drift monitoring."""
    try:
        from text_recognizer.data.synth.dataset import SynthSource

        src = SynthSource(kind="line", split="train", size=n, seed=777)
        imgs = [src[i].image for i in range(n)]
    except Exception:
        return {}
    # the same per-image statistics that serving records for each request, so the two compare
    stats = [image_stats(im) for im in imgs]
    bright = np.array([s["brightness"] for s in stats])
    return {
        "n": n,
        "width_mean": float(np.mean([s["width"] for s in stats])),
        "height_mean": float(np.mean([s["height"] for s in stats])),
        "brightness_mean": float(bright.mean()),
        "brightness_std": float(bright.std()),
        "dark_ink_fraction": float(np.mean([s["polarity"] == "dark_ink" for s in stats])),
    }


def stage_model(
    source: str, out: Path, tracking_uri: str | None = None, lm_cfg: LMConfig | None = None
) -> Path:
    """Stage ``source`` (checkpoint path or ``NAME@ALIAS`` / ``NAME/VERSION``) into the folder ``out``.

    A CTC model also gets the character language model of ``lm_cfg`` (default :class:`LMConfig`).
    """
    lm_cfg = lm_cfg or LMConfig()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    tracking_uri = tracking_uri or TrackingConfig.tracking_uri
    ckpt, registry = resolve_checkpoint(source, tracking_uri)
    raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    lit = LitRecognizer.load_from_checkpoint(ckpt, map_location="cpu")
    model = lit.model.eval().float()
    full: dict[str, Any] = lit.hparams.get("full_config") or {}
    data = full.get("data", {})
    height, max_width = int(data.get("height", model.cfg.input_height)), int(data.get("max_width", 512))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    export_onnx(model, out, height)
    onnx = OnnxModel.load(out, {"model": model.cfg.to_dict(), "vocab": lit.vocab.to_list()})
    images, kind = parity_inputs(height, max_width)
    parity = check_parity(model, onnx, images)
    parity["inputs"] = kind
    (out / LM_FILE).unlink(missing_ok=True)
    onnx.lm = build_lm(lm_cfg) if onnx.has_ctc else None
    if onnx.lm is not None:
        onnx.lm.save(out / LM_FILE)
    decoding = choose_decoder(onnx, lit.vocab, height, max_width, grid=lm_cfg.grid)
    if onnx.lm is not None:
        decoding["lm"] = {
            "order": lm_cfg.order,
            "min_count": lm_cfg.min_count,
            "n_grams": len(onnx.lm),
            "text": "synthetic corpus, train split",
            "max_chars": lm_cfg.max_chars,
        }
    metrics = {}
    for cb in raw.get("callbacks", {}).values():
        if isinstance(cb, dict) and cb.get("best_model_score") is not None:
            metrics["val/cer"] = float(cb["best_model_score"])
    if registry.get("run_id"):  # a registered version: its run has the final validation and test figures
        from mlflow.tracking import MlflowClient

        run = MlflowClient(tracking_uri=tracking_uri).get_run(registry["run_id"])
        metrics.update({k: float(v) for k, v in run.data.metrics.items() if k.startswith("final/")})
    names = [ENCODER_FILE, DECODER_FILE] + ([LM_FILE] if onnx.lm is not None else [])
    files = {name: sha256_file(out / name) for name in names}
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": out.name,
        "version": f"{out.name}-{time.strftime('%Y%m%d%H%M%S')}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "vocab": lit.vocab.to_list(),
        "preprocessing": {
            "input_height": height,
            "max_width": max_width,
            "polarity": "ink bright (1) on dark background (0)",
            "steps": [
                "images.load_gray",
                "images.normalize_ink",
                "images.segment_lines",
                "images.prepare_line",
            ],
            "pad_width_multiple": 8,
        },
        "model": model.cfg.to_dict(),
        "metrics": metrics,
        "training": {
            "config": full,
            "checkpoint": str(ckpt),
            "epoch": raw.get("epoch"),
            "global_step": raw.get("global_step"),
            "registry": registry,
        },
        "data": {"spec": data, "image_stats": _image_stats()},
        "code_version": code_version(),
        "parity": parity,
        "decoding": decoding,
        "files": files,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    size = sum((out / f).stat().st_size for f in files) / 1e6
    print(f"staged {source} -> {out} ({size:.1f} MB, {time.time() - t0:.1f} s); parity: {parity}")
    return out

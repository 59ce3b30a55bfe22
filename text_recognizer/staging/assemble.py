"""The ``stage`` command: resolve the checkpoint, export, check, calibrate, and write the manifest.

``text-recognizer stage runs/checkpoints/line-.../best.ckpt --name line-default``
``text-recognizer stage line-recognizer@candidate``
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from text_recognizer.data.modules import DataConfig
from text_recognizer.images import image_stats
from text_recognizer.inference.manifest import (
    CROSS_FILE,
    DECODER_FILE,
    ENCODER_FILE,
    LM_FILE,
    MANIFEST_FILE,
    LMInfo,
    Manifest,
    Metrics,
    ModelPart,
    Preprocessing,
    Provenance,
    Weights,
)
from text_recognizer.inference.predictor import Predictor
from text_recognizer.inference.runtime import OnnxModel
from text_recognizer.paths import shipped_artifact
from text_recognizer.staging.calibrate import choose_decoder
from text_recognizer.staging.confidence import CalibrationConfig, fit_calibration
from text_recognizer.staging.export import check_parity, export_onnx, parity_inputs
from text_recognizer.staging.lm import LM_TEXT, LMConfig, build_lm
from text_recognizer.training.lit_module import LitRecognizer
from text_recognizer.training.tracking import TrackingConfig, code_version, resolve_checkpoint
from text_recognizer.training.train import TrainerConfig


def reference_image_stats(n: int = 64) -> dict[str, float]:
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


def training_metrics(
    raw: dict[str, Any], full: dict[str, Any], registry: dict[str, str], tracking_uri: str
) -> Metrics:
    """The monitored metric's best value (from the checkpoint's callback state) and, for a registered
    version, its run's ``final/...`` figures."""
    monitor = (full.get("trainer") or {}).get("monitor", TrainerConfig.monitor)
    best = None
    for cb in raw.get("callbacks", {}).values():
        if isinstance(cb, dict) and cb.get("best_model_score") is not None:
            best = float(cb["best_model_score"])
    final: dict[str, float] = {}
    if registry.get("run_id"):  # a registered version: its run has the final validation and test figures
        from mlflow.tracking import MlflowClient

        run = MlflowClient(tracking_uri=tracking_uri).get_run(registry["run_id"])
        final = {k: float(v) for k, v in run.data.metrics.items() if k.startswith("final/")}
    return Metrics(monitor=monitor, best=best, final=final)


def save_weights(model: torch.nn.Module, out: Path) -> Weights:
    """``out/weights.pt``: the model's ``state_dict`` with floating tensors in float16 (half the size; the
    starting point of ``finetune``, which trains in float32)."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    info = Weights(n_params=sum(v.numel() for v in state.values() if v.is_floating_point()))
    torch.save(state, out / info.file)
    return info


def check_target(out: Path, replace_shipped: bool) -> None:
    """Refuse to write over the shipped model (:func:`~text_recognizer.paths.shipped_artifact`) unless
    ``replace_shipped``: a run with a worse model must not silently replace what ``serve`` answers with.

    Raises:
        ValueError: ``out`` is the shipped artifact's folder, it exists, and ``replace_shipped`` is false.
    """
    shipped = shipped_artifact()
    if not replace_shipped and shipped.exists() and out.resolve() == shipped.resolve():
        raise ValueError(
            f"{out} is the shipped model; stage to another --name (and serve it with TEXT_RECOGNIZER_MODEL), "
            "or pass --replace-shipped to overwrite it"
        )


def stage_model(
    source: str,
    out: Path,
    tracking_uri: str | None = None,
    lm_cfg: LMConfig | None = None,
    replace_shipped: bool = False,
    calibration: CalibrationConfig | None = None,
) -> Path:
    """Stage ``source`` (checkpoint path or ``NAME@ALIAS`` / ``NAME/VERSION``) into the folder ``out``.

    A CTC model also gets the character language model of ``lm_cfg`` (default :class:`LMConfig`); the
    confidence map is fit with the chosen decoder on ``calibration`` (default :class:`CalibrationConfig`;
    without fonts, none: the predictor then reports the raw score).
    ``out`` may be the shipped model's folder only with ``replace_shipped`` (see :func:`check_target`).
    """
    check_target(out, replace_shipped)
    lm_cfg = lm_cfg or LMConfig()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    tracking_uri = tracking_uri or TrackingConfig.tracking_uri
    ckpt, registry = resolve_checkpoint(source, tracking_uri)
    raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    lit = LitRecognizer.load_from_checkpoint(ckpt, map_location="cpu")
    model = lit.model.eval().float()
    full: dict[str, Any] = lit.hparams.get("full_config") or {}
    data = DataConfig.from_dict(full.get("data", {}))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    export_onnx(model, out, data.height)
    sizes = ModelPart.from_dict(model.cfg.to_dict())
    onnx = OnnxModel.load(out, sizes)
    parity = check_parity(model, onnx, *parity_inputs(data.height, data.max_width))
    (out / LM_FILE).unlink(missing_ok=True)
    lm = build_lm(lm_cfg) if onnx.has_ctc else None
    if lm is not None:
        lm.save(out / LM_FILE)
    weights = save_weights(model, out)
    names = [ENCODER_FILE, CROSS_FILE, DECODER_FILE, weights.file] + ([LM_FILE] if lm is not None else [])
    # the manifest in memory, before its decoding part is known: calibration reads through its predictor
    manifest = Manifest(
        name=out.name,
        version=f"{out.name}-{time.strftime('%Y%m%d%H%M%S')}",
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        vocab=tuple(lit.vocab.to_list()),
        preprocessing=Preprocessing(input_height=data.height, max_width=data.max_width),
        model=sizes,
        metrics=training_metrics(raw, full, registry, tracking_uri),
        provenance=Provenance(
            code_version=code_version(),
            config=full,
            checkpoint=str(ckpt),
            epoch=raw.get("epoch"),
            global_step=raw.get("global_step"),
            registry=registry,
            data_spec=data.to_dict(),
            image_stats=reference_image_stats(),
            parity=parity,
        ),
        weights=weights,
    ).with_files(out, names)
    predictor = Predictor.from_manifest(manifest, out, decoder="attention", model=onnx, lm=lm)
    decoding = choose_decoder(predictor, grid=lm_cfg.grid)
    if lm is not None:
        info = LMInfo(lm_cfg.order, lm_cfg.min_count, len(lm), text=LM_TEXT, max_chars=lm_cfg.max_chars)
        decoding = dataclasses.replace(decoding, lm=info)
    manifest = dataclasses.replace(manifest, decoding=decoding)
    try:
        cal = fit_calibration(predictor.with_decoding(decoding.default), calibration)
        manifest = dataclasses.replace(manifest, calibration=cal)
        print(f"confidence calibrated on {cal.measured_on}: ECE {cal.ece_raw} -> {cal.ece_calibrated}")
    except Exception as e:  # no fonts: nothing to fit on
        logging.getLogger(__name__).warning("confidence not calibrated (%s): raw scores", e)
    manifest.write(out)
    size = sum((out / f).stat().st_size for f in names) / 1e6
    print(f"staged {source} -> {out} ({size:.1f} MB, {time.time() - t0:.1f} s); parity: {parity}")
    return out


def stage_registered(ref: str, out_dir: Path, tracking_uri: str | None = None) -> Path:
    """The staged artifact of the registered version ``ref`` (``NAME@ALIAS`` or ``NAME/VERSION``):
    ``out_dir/NAME-vVERSION``, staged there first unless it already holds that version."""
    tracking_uri = tracking_uri or TrackingConfig.tracking_uri
    _, info = resolve_checkpoint(ref, tracking_uri)
    if "registered_model" not in info:
        raise FileNotFoundError(f"{ref}: not a registered model NAME@ALIAS or NAME/VERSION")
    name, version = info["registered_model"], info["version"]
    out = out_dir / f"{name}-v{version}"
    if (out / MANIFEST_FILE).exists():
        staged = Manifest.read(out, verify=False).provenance.registry
        if staged.get("registered_model") == name and staged.get("version") == version:
            return out
    return stage_model(f"{name}/{version}", out, tracking_uri=tracking_uri)

"""config -> data -> model -> Trainer.

``text-recognizer train --config configs/line.yaml key.sub=value ...``
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from text_recognizer.data.modules import DataConfig, TextDataModule
from text_recognizer.models.resnet_transformer import ModelConfig
from text_recognizer.training.config_check import check_section, coerce, unknown_key_error
from text_recognizer.training.lit_module import LitRecognizer, OptimConfig
from text_recognizer.training.tracking import (
    SampleTable,
    TrackingConfig,
    make_logger,
    mark_killed_runs,
    record_run,
    tag_process,
)
from text_recognizer.vocab import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class TrainerConfig:
    """Lightning Trainer settings. Several GPUs or machines: ``devices``, ``num_nodes``, ``strategy``."""

    max_epochs: int = 20
    #: wall-clock limit "DD:HH:MM:SS" (None = no limit)
    max_time: str | None = None
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    #: "auto" = bf16-mixed where the hardware runs bfloat16 natively (recent GPUs, CPUs with AVX512-BF16 or
    #: AMX: 1.7x faster per step on this machine's CPU), else 32-true; or any Lightning precision string
    precision: str = "auto"
    #: validation metric that picks the "best" checkpoint (the one registered and staged)
    monitor: str = "val/cer"
    gradient_clip_val: float = 1.0
    log_every_n_steps: int = 20
    limit_train_batches: float | int | None = None
    limit_val_batches: float | int | None = None
    num_threads: int = 0
    checkpoint_dir: str = "runs/checkpoints"
    #: also write last.ckpt every N optimizer steps (0: only at epoch ends), so a run killed in its first
    #: epoch resumes with ``--resume last`` from its last N-step mark; SIGTERM always writes one first
    checkpoint_every_n_steps: int = 100
    test_after_fit: bool = True


@dataclass
class TrainConfig:
    name: str = "line"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    #: overrides of :class:`ModelConfig`; vocabulary, input height and output length come from the data
    model: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    #: start from these weights (an artifact's ``weights.pt`` or a checkpoint) instead of random ones
    init_from: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Checked before anything is built: unknown keys name the closest valid one, values their type."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in known:
                raise unknown_key_error("", str(key), known)
        return cls(
            name=coerce("name", d.get("name", cls.name), str),
            seed=coerce("seed", d.get("seed", cls.seed), int),
            data=DataConfig.from_dict(check_section("data", DataConfig, d.get("data", {}))),
            model=check_section("model", ModelConfig, d.get("model", {})),
            optim=OptimConfig(**check_section("optim", OptimConfig, d.get("optim", {}))),
            trainer=TrainerConfig(**check_section("trainer", TrainerConfig, d.get("trainer", {}))),
            tracking=TrackingConfig(**check_section("tracking", TrackingConfig, d.get("tracking", {}))),
            init_from=coerce("init_from", d.get("init_from"), str) if d.get("init_from") else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["trainer.max_epochs=3", "model.d_model=64"]`` applied to a nested dict (values parsed as YAML)."""
    for item in overrides:
        key, sep, raw = item.lstrip("-").partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like section.key=value")
        node = d
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return d


def load_config(path: Path | None, overrides: list[str] | None = None) -> TrainConfig:
    raw: dict[str, Any] = {}
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"config {path} not found (see configs/ for examples)")
        raw = yaml.safe_load(path.read_text()) or {}
    return TrainConfig.from_dict(apply_overrides(raw, overrides or []))


def build_model_config(cfg: TrainConfig, data_config: dict[str, Any]) -> ModelConfig:
    """Model defaults, then the config's overrides, then what the data dictates (sizes, token ids)."""
    vocab = Vocabulary.from_list(data_config["vocab"])
    merged = {**ModelConfig().to_dict(), **cfg.model}
    merged.update(
        vocab_size=len(vocab),
        pad_id=vocab.pad_id,
        bos_id=vocab.bos_id,
        eos_id=vocab.eos_id,
        input_height=data_config["input_height"],
        max_len=data_config["max_len"],
    )
    return ModelConfig.from_dict(merged)


def build_modules(cfg: TrainConfig) -> tuple[TextDataModule, LitRecognizer]:
    """The data module and the model of ``cfg``; the model's config (from the data's ``config()``) and the
    full run config are saved in the module's hyperparameters, hence in every checkpoint."""
    dm = TextDataModule(cfg.data)
    data_config = dm.config()
    model_cfg = build_model_config(cfg, data_config)
    full = cfg.to_dict()
    full["model"] = model_cfg.to_dict()
    lit = LitRecognizer(model_cfg.to_dict(), dataclasses.asdict(cfg.optim), data_config["vocab"], full)
    lit.model.to(memory_format=lit.model.memory_format)  # type: ignore[call-overload]
    return dm, lit


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """``"auto"`` -> ``"bf16-mixed"`` when the device computes in bfloat16 natively, else ``"32-true"``."""
    if precision != "auto":
        return precision
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("auto", "cpu") and torch.backends.mkldnn.is_available():
        return "bf16-mixed" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32-true"
    return "32-true"


def train(cfg: TrainConfig, resume: str | None = None) -> dict[str, Any]:
    """Train, test, record and register. Returns the final metrics and checkpoint paths."""
    L.seed_everything(cfg.seed, workers=True)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    dm, lit = build_modules(cfg)
    if cfg.init_from and not resume:
        load_weights(lit, Path(cfg.init_from))
    full = lit.hparams["full_config"]

    ckpt_path: str | None = None
    if resume:
        ckpt_path = _find_resume(resume, cfg)
        run_dir = Path(ckpt_path).parent
    else:
        run_dir = Path(cfg.trainer.checkpoint_dir) / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    logger = make_logger(cfg.tracking, run_dir.name)
    mark_killed_runs(cfg.tracking)
    best = ModelCheckpoint(
        dirpath=run_dir, filename="best", monitor=cfg.trainer.monitor, mode="min", save_top_k=1
    )
    # last.ckpt after every epoch, whatever the metric did: Lightning's save_last=True writes it only on
    # epochs that improved the monitored metric (and once more at the end), so a run killed after epochs
    # without improvement would resume from an older one
    last = ModelCheckpoint(
        dirpath=run_dir, filename="last", monitor=None, save_top_k=1, enable_version_counter=False
    )
    t = cfg.trainer
    steps = (
        [
            ModelCheckpoint(
                dirpath=run_dir,
                filename="last",
                monitor=None,
                save_top_k=1,
                enable_version_counter=False,
                every_n_train_steps=t.checkpoint_every_n_steps,
            )
        ]
        if t.checkpoint_every_n_steps > 0
        else []
    )
    trainer = L.Trainer(
        max_epochs=t.max_epochs,
        max_time=t.max_time,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=resolve_precision(t.precision, t.accelerator),  # type: ignore[arg-type]
        gradient_clip_val=t.gradient_clip_val,
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        logger=logger,
        # a plain tqdm bar when logging to a file, so that progress shows in the log
        callbacks=[
            best,
            last,
            *steps,
            SaveOnSigterm(run_dir / "last.ckpt"),
            LearningRateMonitor("step"),
            SampleTable(),
            *([] if sys.stderr.isatty() else [TQDMProgressBar(refresh_rate=50)]),
        ],
        reload_dataloaders_every_n_epochs=1,
        num_sanity_val_steps=1,
    )
    logger.log_hyperparams(full)
    tag_process(logger)
    started = time.time()
    try:
        trainer.fit(lit, datamodule=dm, ckpt_path=ckpt_path)
    except SIGTERMException:
        print(f"stopped by SIGTERM; resume with --resume last (or --resume {run_dir / 'last.ckpt'})")
        raise SystemExit(128 + 15) from None
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    metrics["train_minutes"] = (time.time() - started) / 60
    if t.test_after_fit and best.best_model_path:
        result = trainer.test(lit, datamodule=dm, ckpt_path=best.best_model_path)
        metrics.update({k: float(v) for k, v in result[0].items()})
    version = record_run(logger, cfg.tracking, full, best.best_model_path or None, metrics)
    out = {
        "metrics": metrics,
        "best": best.best_model_path,
        "last": str(run_dir / "last.ckpt"),
        "model_version": version,
        "run_id": getattr(logger, "run_id", None),
    }
    log.info("training done: %s", out)
    print(out)
    return out


class SaveOnSigterm(L.Callback):
    """On SIGTERM (a scheduler's or container's stop), write ``path`` before the process exits: Lightning
    turns the signal into :class:`SIGTERMException` after the current batch, so the state is whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)
            log.warning("SIGTERM: checkpoint at step %d written to %s", trainer.global_step, self.path)


def load_weights(lit: LitRecognizer, path: Path) -> None:
    """Load ``path`` into ``lit.model`` in float32: a ``state_dict`` of the model (an artifact's
    ``weights.pt``) or a Lightning checkpoint (its ``state_dict`` under ``model.``).

    Raises:
        FileNotFoundError: no such file. RuntimeError: the weights do not fit the model's configuration.
    """
    if not path.exists():
        raise FileNotFoundError(f"init_from: no such weights file {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:
        state = {
            k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")
        }
    lit.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


def _find_resume(resume: str, cfg: TrainConfig) -> str:
    if resume != "last":
        if not Path(resume).exists():
            raise FileNotFoundError(f"--resume {resume}: no such checkpoint")
        return resume
    candidates = sorted(
        Path(cfg.trainer.checkpoint_dir).glob(f"{cfg.name}-*/last.ckpt"), key=lambda p: p.stat().st_mtime
    )
    if not candidates:
        raise FileNotFoundError(
            f"--resume last: no last.ckpt under {cfg.trainer.checkpoint_dir}/{cfg.name}-*"
        )
    return str(candidates[-1])


def train_from_config(
    config: Path | None, overrides: list[str] | None = None, resume: str | None = None
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(config, overrides)
    if cfg.init_from and not resume and cfg.data.train_offset == 0:
        log.warning(
            "init_from with data.train_offset=0: the run reads the training stream from its start, which a "
            "run of the same seed trained these weights on; set data.train_offset past it (steps x batch)"
        )
    train(cfg, resume=resume)

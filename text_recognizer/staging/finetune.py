"""``text-recognizer finetune``: adapt a staged model to its users' corrected lines, behind a quality gate.

1. The user's lines (a ``feedback export`` folder) are split, by a hash of each image's name, into a training
   part and a held-out part (:attr:`FinetuneConfig.heldout_fraction`).
2. Training starts from the artifact's shipped weights (``weights.pt``, see
   :class:`~text_recognizer.inference.manifest.Weights`) with the artifact's own training configuration, on a
   mixture of the user's lines and fresh synthetic lines (so that the model does not forget), for at most
   :attr:`FinetuneConfig.max_minutes`. The run is tracked like any training run.
3. The quality gate (:func:`decide`) compares the fine-tuned model with the current ``production`` version
   (else the starting artifact) on synthetic validation lines and on the held-out user lines, both decoded by
   greedy CTC (the attention decoder for a model without a CTC head). Only a model that passes is registered,
   as ``candidate``; the comparison is printed and logged in the run (``gate/...`` metrics, ``gate`` tag).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from text_recognizer.data.base import Source
from text_recognizer.data.folder import FolderSource, read_labels, write_labels
from text_recognizer.data.modules import DataConfig, EncodedDataset, SourceSpec, collate
from text_recognizer.inference.manifest import Manifest
from text_recognizer.metrics import error_rate
from text_recognizer.paths import default_artifact
from text_recognizer.training.lit_module import LitRecognizer
from text_recognizer.training.tracking import TrackingConfig, register_version, resolve_checkpoint
from text_recognizer.training.train import TrainConfig, build_modules, load_weights, train

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    """Everything ``finetune`` needs; the defaults fit a laptop CPU.

    Attributes:
        lines: a ``labels.jsonl`` folder of user lines (``feedback export --out``).
        base: the artifact whose weights training starts from (default: the served one).
        max_minutes: wall-clock limit of the training.
        user_weight: share of user lines among the training samples (the rest synthetic).
        user_restyle: share of the draws of a user line that are it written and photographed again
            (:func:`~text_recognizer.data.synth.render.restyle_line`: slant, stretch, pen, elastic, paper,
            camera), so that a few dozen lines are not learnt by heart; 0: the lines as they are.
        train_size: samples per epoch.
        threads: torch threads of the training. One: its CPU time is then about its wall time (so that
            ``max_minutes`` bounds the CPU it costs), and on a busy machine no thread spins waiting for
            another that is not scheduled (two threads on two shared cores ran 3 to 6 times slower per step).
        synth_tolerance: the gate's allowance on synthetic validation CER, relative to the base model's.
    """

    lines: Path
    base: Path | None = None
    max_minutes: float = 8.0
    heldout_fraction: float = 0.25
    user_weight: float = 0.3
    user_restyle: float = 0.8
    train_size: int = 256
    threads: int = 1
    batch_size: int = 16
    lr: float = 3e-4
    warmup_steps: int = 20
    #: BatchNorm statistics kept from the starting weights (:attr:`OptimConfig.freeze_norm`)
    freeze_norm: bool = True
    #: synthetic validation lines of the gate (fixed seed: the same lines for both models)
    gate_synth_lines: int = 128
    gate_seed: int = 4242
    synth_tolerance: float = 0.10
    work_dir: Path = Path("runs/finetune")
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    seed: int = 0


@dataclass(frozen=True)
class Scores:
    """CER of one model on the gate's two sets."""

    synth_cer: float
    user_cer: float


@dataclass(frozen=True)
class GateDecision:
    base: Scores
    new: Scores
    base_name: str
    passed: bool
    reasons: tuple[str, ...]

    def lines(self) -> list[str]:
        """The comparison as printed."""
        b, n = self.base, self.new
        return [
            f"quality gate against {self.base_name}:",
            f"  synthetic validation CER  base {b.synth_cer:.4f}  new {n.synth_cer:.4f}",
            f"  held-out user lines CER   base {b.user_cer:.4f}  new {n.user_cer:.4f}",
            f"  {'PASSED' if self.passed else 'REFUSED'}: " + "; ".join(self.reasons),
        ]


@dataclass(frozen=True)
class FinetuneResult:
    checkpoint: Path
    gate: GateDecision
    run_id: str | None
    model_version: str | None
    train_seconds: float


def decide(base: Scores, new: Scores, base_name: str, synth_tolerance: float) -> GateDecision:
    """Pass only if ``new`` is no worse than ``base`` on synthetic validation (within ``synth_tolerance``
    of base's CER, relative) and strictly better on the held-out user lines."""
    limit = base.synth_cer * (1 + synth_tolerance)
    synth_ok = new.synth_cer <= limit
    user_ok = new.user_cer < base.user_cer
    reasons = (
        f"synthetic {'within' if synth_ok else 'above'} {limit:.4f} (base + {synth_tolerance:.0%})",
        f"user lines {'better' if user_ok else 'not better'} than base",
    )
    return GateDecision(base, new, base_name, synth_ok and user_ok, reasons)


def split_lines(folder: Path, out: Path, heldout_fraction: float) -> tuple[Path, Path]:
    """Copy the lines of ``folder`` into ``out/train`` and ``out/heldout`` (labels.jsonl folders), each line
    by a hash of its image name, so a line stays on its side whatever else is exported.

    Raises:
        ValueError: fewer than two lines, or a side would be empty.
    """
    entries = read_labels(folder)
    if len(entries) < 2:
        raise ValueError(f"{folder}: {len(entries)} line(s); fine-tuning needs at least 2 corrected lines")

    def held(e: Any) -> bool:
        h = hashlib.sha256(e.image.resolve().relative_to(folder.resolve()).as_posix().encode()).digest()
        return int.from_bytes(h[:4], "big") / 2**32 < heldout_fraction

    sides = {"train": [e for e in entries if not held(e)], "heldout": [e for e in entries if held(e)]}
    if not sides["train"] or not sides["heldout"]:  # too few lines for the hash: the first n held out
        n = max(1, round(len(entries) * heldout_fraction))
        sides = {"train": entries[n:], "heldout": entries[:n]}
    for side, items in sides.items():
        dest = out / side
        shutil.rmtree(dest, ignore_errors=True)
        (dest / "images").mkdir(parents=True)
        names = []
        for i, e in enumerate(items):
            name = f"images/{i:05d}{e.image.suffix}"
            shutil.copyfile(e.image, dest / name)
            names.append((name, e.text))
        write_labels(dest, names)
    return out / "train", out / "heldout"


def transcribe(lit: LitRecognizer, source: Source, data: DataConfig, batch_size: int = 32) -> list[str]:
    """Greedy CTC (attention without a CTC head) texts of every sample of ``source``, in order."""
    ds = EncodedDataset(source, lit.vocab, data.height, data.max_width, data.max_text_len)
    lit.eval()
    out: list[str] = []
    with torch.no_grad():
        for images, _, _ in DataLoader(ds, batch_size=batch_size, collate_fn=collate):
            out += lit._decode_ctc(images) if lit.model.ctc is not None else lit._decode_texts(images)
    return out


def score(lit: LitRecognizer, synth: Source, user: Source, data: DataConfig) -> Scores:
    """CER of ``lit`` on the synthetic and the user set."""

    def cer(source: Source) -> float:
        truths = [lit.vocab.normalize(source[i].text)[: data.max_text_len] for i in range(len(source))]
        return error_rate(transcribe(lit, source, data), truths)

    return Scores(synth_cer=cer(synth), user_cer=cer(user))


def base_config(manifest: Manifest, cfg: FinetuneConfig, user_train: Path, weights: Path) -> TrainConfig:
    """The artifact's training configuration, turned into a short fine-tuning run on the user's lines."""
    base = TrainConfig.from_dict(manifest.provenance.config)
    synth = SourceSpec(name="synth", weight=1 - cfg.user_weight)
    user = SourceSpec(name="folder", weight=cfg.user_weight, path=str(user_train), restyle=cfg.user_restyle)
    seconds = int(cfg.max_minutes * 60)
    return dataclasses.replace(
        base,
        name="finetune",
        seed=cfg.seed,
        init_from=str(weights),
        data=dataclasses.replace(
            base.data,
            train=[user, synth],
            val=[SourceSpec()],
            train_size=cfg.train_size,
            val_size=64,
            batch_size=cfg.batch_size,
            num_workers=0,
        ),
        optim=dataclasses.replace(
            base.optim, lr=cfg.lr, warmup_steps=cfg.warmup_steps, total_steps=0, freeze_norm=cfg.freeze_norm
        ),
        trainer=dataclasses.replace(
            base.trainer,
            max_epochs=10_000,
            max_time=f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",
            checkpoint_dir=str(cfg.work_dir),
            test_after_fit=False,
            limit_val_batches=None,
            num_threads=cfg.threads,
        ),
        tracking=dataclasses.replace(cfg.tracking, register_as=""),  # registered after the gate only
    )


def artifact_model(folder: Path) -> tuple[LitRecognizer, DataConfig]:
    """The torch model of an artifact (its ``weights.pt`` in float32) and its data configuration.

    Raises:
        ValueError: the artifact ships no weights.
    """
    manifest = Manifest.read(folder)
    if manifest.weights is None:
        raise ValueError(f"{folder} ships no weights (staged before weights.pt); stage it again to finetune")
    cfg = TrainConfig.from_dict(manifest.provenance.config)
    _, lit = build_modules(cfg)
    load_weights(lit, folder / manifest.weights.file)
    return lit, cfg.data


def gate_base(cfg: FinetuneConfig, folder: Path) -> tuple[LitRecognizer, str]:
    """The model to beat: ``NAME@production`` when the registry has one, else the starting artifact."""
    name = cfg.tracking.register_as
    try:
        ckpt, info = resolve_checkpoint(f"{name}@production", cfg.tracking.tracking_uri)
        lit = LitRecognizer.load_from_checkpoint(ckpt, map_location="cpu")
        return lit, f"{name}@production (version {info['version']})"
    except FileNotFoundError:
        return artifact_model(folder)[0], f"the starting artifact ({folder})"


def finetune(cfg: FinetuneConfig) -> FinetuneResult:
    """Fine-tune, gate, and register as ``candidate`` if the gate passes."""
    folder = Path(cfg.base) if cfg.base else default_artifact()
    manifest = Manifest.read(folder)
    if manifest.weights is None:
        raise ValueError(f"{folder} ships no weights (staged before weights.pt); stage it again to finetune")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    user_train, user_heldout = split_lines(
        Path(cfg.lines), cfg.work_dir / f"lines-{stamp}", cfg.heldout_fraction
    )
    train_cfg = base_config(manifest, cfg, user_train, folder / manifest.weights.file)
    started = time.time()
    out = train(train_cfg)
    seconds = time.time() - started
    ckpt = Path(out["last"])
    if not ckpt.exists():  # last.ckpt is written at the end of each epoch
        raise RuntimeError(
            f"finetune stopped before its first epoch ended; give it more than {cfg.max_minutes} min"
        )
    new = LitRecognizer.load_from_checkpoint(ckpt, map_location="cpu")
    base, base_name = gate_base(cfg, folder)
    from text_recognizer.data.synth.dataset import SynthSource

    synth = SynthSource(kind="line", split="val", size=cfg.gate_synth_lines, seed=cfg.gate_seed)
    heldout = FolderSource(user_heldout)
    decision = decide(
        score(base, synth, heldout, train_cfg.data),
        score(new, synth, heldout, train_cfg.data),
        base_name,
        cfg.synth_tolerance,
    )
    for line in decision.lines():
        print(line)
    version = record_gate(decision, out.get("run_id"), ckpt, cfg.tracking)
    return FinetuneResult(ckpt, decision, out.get("run_id"), version, seconds)


def record_gate(
    decision: GateDecision, run_id: str | None, ckpt: Path, tracking: TrackingConfig
) -> str | None:
    """Log the comparison in the run (``gate/...`` metrics, ``gate`` tag, ``gate.txt``) and, only if the
    gate passed, register ``ckpt`` as ``tracking.register_as@candidate``. Returns the version registered."""
    version = None
    if run_id and tracking.backend == "mlflow":
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking.tracking_uri)
        for side, s in (("base", decision.base), ("new", decision.new)):
            client.log_metric(run_id, f"gate/{side}_synth_cer", s.synth_cer)
            client.log_metric(run_id, f"gate/{side}_user_cer", s.user_cer)
        client.set_tag(run_id, "gate", "passed" if decision.passed else "refused")
        client.set_tag(run_id, "gate_base", decision.base_name)
        client.log_text(run_id, "\n".join(decision.lines()) + "\n", "gate.txt")
        if decision.passed and tracking.register_as:
            version = register_version(client, run_id, str(ckpt), tracking.register_as, "candidate")
            print(f"registered {tracking.register_as} version {version} as @candidate")
    if version is None:
        print("not registered: the candidate alias is unchanged")
    return version


def promote(ref: str, tracking_uri: str = TrackingConfig.tracking_uri) -> tuple[str, str]:
    """Point ``NAME@production`` at the version ``ref`` (``NAME@ALIAS`` or ``NAME/VERSION``) names.
    Returns ``(name, version)``.

    Raises:
        FileNotFoundError: ``ref`` names no registered version.
    """
    _, info = resolve_checkpoint(ref, tracking_uri)
    if "registered_model" not in info:
        raise FileNotFoundError(f"{ref}: promote takes a registered model NAME@ALIAS or NAME/VERSION")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    client.set_registered_model_alias(info["registered_model"], "production", info["version"])
    print(f"{info['registered_model']}@production -> version {info['version']}")
    return info["registered_model"], info["version"]

"""Experiment tracking and the model registry, with no server or account.

- ``mlflow`` (default): a local SQLite store (``runs/mlflow.db``) and artifact folder (``runs/mlartifacts``).
- ``wandb``: Weights & Biases when the user configures it (``WANDB_MODE=offline`` works without a network).
- ``csv``: plain CSV files under ``runs/csv``.

The registry is MLflow's: a run's best checkpoint becomes a version of a named model with an alias
(``candidate``, ``production``); :func:`resolve_checkpoint` turns ``NAME@ALIAS`` back into a local file.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)


@dataclass
class TrackingConfig:
    backend: str = "mlflow"
    experiment: str = "text-recognizer"
    tracking_uri: str = "sqlite:///runs/mlflow.db"
    artifact_location: str = "runs/mlartifacts"
    wandb_project: str = "text-recognizer"
    #: register the best checkpoint as a version of this model ("" to skip)
    register_as: str = "line-recognizer"
    alias: str = "candidate"


def code_version() -> str:
    """The git commit of the working tree, with ``-dirty`` when it has uncommitted changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True
        ).stdout.strip()
        return sha.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _mlflow_artifact_uri(location: str) -> str:
    p = Path(location)
    return p.resolve().as_uri() if "://" not in location else location


def make_logger(cfg: TrackingConfig, run_name: str) -> Logger:
    if cfg.backend == "mlflow":
        if cfg.tracking_uri.startswith("sqlite:///"):
            Path(cfg.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return MLFlowLogger(
            experiment_name=cfg.experiment,
            run_name=run_name,
            tracking_uri=cfg.tracking_uri,
            artifact_location=_mlflow_artifact_uri(cfg.artifact_location),
            log_model=False,
        )
    if cfg.backend == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(project=cfg.wandb_project, name=run_name, save_dir="runs")
    if cfg.backend == "csv":
        return CSVLogger("runs/csv", name=cfg.experiment)
    raise ValueError(f"unknown tracking backend {cfg.backend!r}: expected mlflow, wandb or csv")


#: run tags naming the training process, so a later start can tell a killed run from one still going
HOST_TAG, PID_TAG, PID_START_TAG = "process.host", "process.pid", "process.start"


def _process_start(pid: int) -> str:
    """When ``pid`` started (clock ticks since boot, from ``/proc``; "" where there is no ``/proc``), so a
    reused pid is not taken for the training process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def tag_process(logger: Logger) -> None:
    """Tag an MLflow run with this process's host, pid and start time (other backends: nothing)."""
    if not isinstance(logger, MLFlowLogger) or logger.run_id is None:
        return
    pid = os.getpid()
    for key, value in (
        (HOST_TAG, socket.gethostname()),
        (PID_TAG, str(pid)),
        (PID_START_TAG, _process_start(pid)),
    ):
        logger.experiment.set_tag(logger.run_id, key, value)


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return not started or _process_start(pid) == started


def mark_killed_runs(cfg: TrackingConfig) -> list[str]:
    """Mark KILLED the runs left RUNNING in the MLflow store by a training process of this host that is gone
    (``kill -9``, a crash, a power cut: nothing could end them). Runs of other hosts, runs whose process is
    alive, and runs without the process tags are left alone. Returns the run ids marked."""
    if cfg.backend != "mlflow":
        return []
    client = _client(cfg.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.experiment)
    if experiment is None:
        return []
    host = socket.gethostname()
    marked = []
    for run in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        pid = tags.get(PID_TAG, "")
        if tags.get(HOST_TAG) != host or not pid.isdigit() or _alive(int(pid), tags.get(PID_START_TAG, "")):
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        marked.append(run.info.run_id)
        log.warning(
            "run %s (%s) was left RUNNING by a process that is gone: marked KILLED",
            run.info.run_id,
            run.info.run_name,
        )
    return marked


def samples_sheet(samples: list[tuple[Any, str, str]]) -> Image.Image:
    """A picture of validation samples: each image with its truth and the model's prediction under it."""
    rows = []
    for image, truth, pred in samples:
        a = (np.asarray(image, dtype=np.float32) * 255).clip(0, 255).astype(np.uint8)
        rows.append((Image.fromarray(255 - a), truth, pred))
    width = max(max(r[0].width for r in rows), 520)
    height = sum(r[0].height + 30 for r in rows)
    sheet = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(sheet)
    y = 0
    for img, truth, pred in rows:
        sheet.paste(img, (0, y))
        y += img.height
        draw.text((2, y + 2), f"truth: {truth}"[:90], fill=0)
        draw.text((2, y + 15), f"pred:  {pred}"[:90], fill=90)
        y += 30
    return sheet


class SampleTable(L.Callback):
    """After each validation, log a table (JSON) and a picture (PNG) of samples: truth and prediction."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        samples = getattr(pl_module, "samples", None)
        if not samples or trainer.sanity_checking:
            return
        step = trainer.global_step
        table = [{"truth": t, "prediction": p} for _, t, p in samples]
        lg = trainer.logger
        with tempfile.TemporaryDirectory() as tmp:
            png, js = Path(tmp) / f"samples-{step:07d}.png", Path(tmp) / f"samples-{step:07d}.json"
            samples_sheet(samples).save(png)
            js.write_text(json.dumps(table, indent=1))
            if isinstance(lg, MLFlowLogger) and lg.run_id is not None:
                lg.experiment.log_artifact(lg.run_id, str(png), "samples")
                lg.experiment.log_artifact(lg.run_id, str(js), "samples")
            elif lg is not None and lg.__class__.__name__ == "WandbLogger":
                lg.log_text(  # type: ignore[attr-defined]
                    key="samples",
                    columns=["truth", "prediction"],
                    data=[[r["truth"], r["prediction"]] for r in table],
                )
            elif lg is not None and lg.log_dir:
                out = Path(lg.log_dir) / "samples"
                out.mkdir(parents=True, exist_ok=True)
                (out / png.name).write_bytes(png.read_bytes())
                (out / js.name).write_text(js.read_text())


def record_run(
    logger: Logger,
    cfg: TrackingConfig,
    config: dict[str, Any],
    best_ckpt: str | None,
    metrics: dict[str, float],
) -> str | None:
    """Log the config, code version, data spec and best checkpoint; register it. Returns the model version."""
    if not isinstance(logger, MLFlowLogger) or logger.run_id is None:
        return None
    client, run_id = logger.experiment, logger.run_id
    client.set_tag(run_id, "code_version", code_version())
    client.log_dict(run_id, config, "config.json")
    client.log_dict(run_id, config.get("data", {}), "data_spec.json")
    for k, v in metrics.items():
        client.log_metric(run_id, f"final/{k}", float(v))
    if not best_ckpt or not cfg.register_as:
        return None
    return register_version(client, run_id, best_ckpt, cfg.register_as, cfg.alias)


def register_version(client: Any, run_id: str, ckpt: str, name: str, alias: str) -> str:
    """Log ``ckpt`` in the run's artifacts, register it as a new version of ``name`` and point ``alias`` at
    it. Returns the version."""
    client.log_artifact(run_id, ckpt, "checkpoints")
    source = f"{client.get_run(run_id).info.artifact_uri}/checkpoints/{Path(ckpt).name}"
    try:
        client.get_registered_model(name)
    except Exception:
        client.create_registered_model(name)
    mv = client.create_model_version(name, source, run_id=run_id)
    client.set_registered_model_alias(name, alias, mv.version)
    log.info("registered %s version %s as @%s", name, mv.version, alias)
    return str(mv.version)


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def resolve_checkpoint(
    ref: str, tracking_uri: str = TrackingConfig.tracking_uri
) -> tuple[Path, dict[str, str]]:
    """``path.ckpt``, ``NAME@ALIAS`` or ``NAME/VERSION`` -> (local checkpoint path, registry info)."""
    p = Path(ref)
    if p.exists():
        return p, {"source": str(p)}
    if p.suffix == ".ckpt" or ref.startswith(("/", ".", "~")) or ref.count("/") > 1:
        raise FileNotFoundError(f"checkpoint {ref} not found")
    if "@" not in ref and "/" not in ref:
        raise FileNotFoundError(
            f"{ref}: neither a checkpoint file nor a registered model NAME@ALIAS or NAME/VERSION"
        )
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, version = ref.split("/", 1)
            mv = client.get_model_version(name, version)
    except MlflowException as e:
        first = str(e.message).strip().splitlines()[0] if str(e.message).strip() else type(e).__name__
        raise FileNotFoundError(f"{ref}: no such registered model version in {tracking_uri} ({first})") from e
    source = str(mv.source)
    local = Path(source.removeprefix("file://")) if source.startswith("file://") else None
    if local is None or not local.exists():
        import mlflow.artifacts

        local = Path(mlflow.artifacts.download_artifacts(source, tracking_uri=tracking_uri))
    info = {
        "registered_model": mv.name,
        "version": str(mv.version),
        "run_id": str(mv.run_id),
        "source": source,
    }
    return local, info


def print_runs(limit: int = 20, tracking_uri: str = TrackingConfig.tracking_uri) -> None:
    """Print recent runs with their metrics, and the registered model versions with aliases."""
    client = _client(tracking_uri)
    exps = client.search_experiments()
    runs = client.search_runs(
        [e.experiment_id for e in exps], order_by=["attributes.start_time DESC"], max_results=limit
    )
    # each CER under its own name: the attention decoder's (val/cer) and the CTC head's (val/cer_ctc, what
    # configs/line.yaml monitors to pick the staged checkpoint); the last value logged
    cers = ("val/cer", "val/cer_ctc")
    print(f"{'run id':34} {'name':24} {'status':9} " + " ".join(f"{c:>11}" for c in cers) + f" {'step':>7}")
    for r in runs:
        m = r.data.metrics
        values = " ".join(f"{'' if m.get(c) is None else f'{m[c]:.4f}':>11}" for c in cers)
        print(
            f"{r.info.run_id:34} {(r.info.run_name or '')[:24]:24} {r.info.status:9} "
            f"{values} {int(m.get('step', 0)):>7}"
        )
    for rm in client.search_registered_models():
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            aliases = [a for a, v in (rm.aliases or {}).items() if str(v) == str(mv.version)]
            print(f"model {rm.name} v{mv.version} run={mv.run_id} aliases={','.join(aliases) or '-'}")
    print(f"browse: make mlflow-ui  (mlflow ui --backend-store-uri {tracking_uri})")

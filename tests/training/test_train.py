"""A short real run on synthetic data: tracking store, registry, staging from the registry, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from text_recognizer.training.train import load_config, train

from model_helpers import tiny_model_overrides

REPO = Path(__file__).resolve().parents[2]


def _overrides(tmp: Path, epochs: int) -> list[str]:
    model = tiny_model_overrides()
    return [
        f"trainer.max_epochs={epochs}",
        "trainer.limit_val_batches=1",
        "trainer.accelerator=cpu",
        f"trainer.checkpoint_dir={tmp / 'ckpts'}",
        "data.train_size=32",
        "data.val_size=8",
        "data.test_size=8",
        "data.batch_size=8",
        "data.num_workers=0",
        f"tracking.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
        f"tracking.artifact_location={tmp / 'mlartifacts'}",
        *(f"model.{k}={v}" for k, v in model.items()),
    ]


def test_end_to_end_run_registry_stage_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(REPO / "configs" / "line.yaml", _overrides(tmp_path, epochs=1))
    out = train(cfg)
    assert Path(out["best"]).exists() and Path(out["last"]).exists()
    assert out["metrics"]["val/cer"] >= 0 and "test/cer" in out["metrics"]
    assert out["model_version"] == "1"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    mv = client.get_model_version_by_alias("line-recognizer", "candidate")
    run = client.get_run(mv.run_id)
    assert "val/cer" in run.data.metrics and run.data.tags["code_version"]
    artifacts = {a.path for a in client.list_artifacts(mv.run_id)}
    assert {"checkpoints", "config.json", "data_spec.json", "samples"} <= artifacts

    from text_recognizer.staging.assemble import stage_model
    from text_recognizer.staging.lm import LMConfig

    lm = LMConfig(order=3, max_chars=100_000, grid=((0.5, 1.0),))
    art = stage_model(
        "line-recognizer@candidate", tmp_path / "art", tracking_uri=cfg.tracking.tracking_uri, lm_cfg=lm
    )
    assert (art / "manifest.json").exists()

    saved = torch.load(out["last"], map_location="cpu", weights_only=False)
    cfg2 = load_config(REPO / "configs" / "line.yaml", _overrides(tmp_path, epochs=2))
    out2 = train(cfg2, resume=out["last"])
    resumed = torch.load(out2["last"], map_location="cpu", weights_only=False)
    # the second run continued the first: same number of steps again, on top of the saved ones
    assert resumed["global_step"] == 2 * saved["global_step"]
    assert resumed["epoch"] > saved["epoch"]

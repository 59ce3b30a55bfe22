"""The other tracking backends: Weights & Biases in offline mode (no network, no account) and CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from text_recognizer.training.train import load_config, train

from model_helpers import tiny_model_overrides

REPO = Path(__file__).resolve().parents[2]


def _tiny(tmp: Path, backend: str) -> list[str]:
    return [
        f"tracking.backend={backend}",
        "trainer.max_epochs=1",
        "trainer.limit_val_batches=1",
        "trainer.accelerator=cpu",
        "trainer.test_after_fit=false",
        f"trainer.checkpoint_dir={tmp / 'ckpts'}",
        "data.train_size=16",
        "data.val_size=8",
        "data.batch_size=8",
        "data.num_workers=0",
        *(f"model.{k}={v}" for k, v in tiny_model_overrides().items()),
    ]


def test_wandb_offline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="Weights & Biases is optional: pip install wandb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = train(load_config(REPO / "configs" / "line.yaml", _tiny(tmp_path, "wandb")))
    assert Path(out["best"]).exists()
    runs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "the offline run has no event log"


def test_csv_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    train(load_config(REPO / "configs" / "line.yaml", _tiny(tmp_path, "csv")))
    metrics = list((tmp_path / "runs" / "csv").rglob("metrics.csv"))
    assert len(metrics) == 1 and "val/cer" in metrics[0].read_text()
    assert list((tmp_path / "runs" / "csv").rglob("samples/*.png")), "no sample table picture"

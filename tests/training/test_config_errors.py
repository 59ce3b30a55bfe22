"""Friendly errors before anything trains: misspelt keys name the closest valid key, bad values are refused
with their key, a missing checkpoint or registry version is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from text_recognizer.training.config_check import coerce
from text_recognizer.training.tracking import resolve_checkpoint
from text_recognizer.training.train import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.d_modle=64", "unknown config key model.d_modle; did you mean model.d_model?"),
        ("trainer.max_epoch=3", "did you mean trainer.max_epochs?"),
        ("optim.learning_rate=0.1", "unknown config key optim.learning_rate"),
        ("traner.max_epochs=3", "unknown config key traner; did you mean trainer?"),
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc': expected an integer"),
        ("optim.lr=fast", "optim.lr='fast': expected a number"),
        ("trainer.test_after_fit=maybe", "expected true or false"),
        ("model.channels=7", "model.channels=7: expected a list"),
    ],
)
def test_bad_overrides_are_named(override: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        load_config(ROOT / "configs" / "line.yaml", [override])
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_good_values_are_read_as_their_type() -> None:
    cfg = load_config(
        ROOT / "configs" / "line.yaml",
        [
            "optim.lr=1e-3",
            "trainer.limit_train_batches=10",
            "trainer.limit_val_batches=0.5",
            "model.d_model=64",
        ],
    )
    assert cfg.optim.lr == 0.001 and isinstance(cfg.optim.lr, float)
    assert cfg.trainer.limit_train_batches == 10 and isinstance(cfg.trainer.limit_train_batches, int)
    assert cfg.trainer.limit_val_batches == 0.5
    assert coerce("x", None, int | None) is None


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "text_recognizer.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def test_cli_bad_value_is_one_line_before_training() -> None:
    out = cli("train", "--config", "configs/line.yaml", "trainer.max_epochs=abc")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: trainer.max_epochs='abc': expected an integer", out.stderr


def test_stage_missing_checkpoint_is_one_line() -> None:
    out = cli("stage", "/nope.ckpt")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: checkpoint /nope.ckpt not found", out.stderr


def test_missing_registry_version_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such registered model version") as e:
        resolve_checkpoint("no-such-model/3", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert "\n" not in str(e.value)


def test_init_from_without_train_offset_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A run from other weights that would re-read the stream's start is told; one with an offset is not."""
    import text_recognizer.training.train as train_module

    seen: list[int] = []
    monkeypatch.setattr(train_module, "train", lambda cfg, resume=None: seen.append(cfg.data.train_offset))
    config, weights = ROOT / "configs" / "line.yaml", "init_from=artifacts/line-default/weights.pt"
    train_module.train_from_config(config, [weights])
    assert "data.train_offset=0" in caplog.text
    caplog.clear()
    train_module.train_from_config(config, [weights, "data.train_offset=80000"])
    assert seen == [0, 80000] and "train_offset" not in caplog.text

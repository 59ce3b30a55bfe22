"""``kill -9`` of training mid-epoch, then ``--resume last``: the run continues from the last checkpoint (same
global step, same epoch) instead of starting over, and finishes the planned number of steps.

A real ``text-recognizer train`` subprocess on the real line config, shrunk: tiny model, tiny synthetic data
(about 20 s on 2 cores).
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from text_recognizer.paths import repo_root

from model_helpers import tiny_model_overrides

EPOCHS, TRAIN_SIZE, BATCH = 3, 160, 8
STEPS_PER_EPOCH = TRAIN_SIZE // BATCH


def train_command(checkpoints: Path, resume: bool) -> list[str]:
    model = [f"model.{k}={v}".replace(" ", "") for k, v in tiny_model_overrides().items()]
    overrides = [
        f"data.train_size={TRAIN_SIZE}",
        "data.val_size=16",
        "data.test_size=16",
        f"data.batch_size={BATCH}",
        "data.num_workers=0",
        "data.max_text_len=40",
        f"trainer.max_epochs={EPOCHS}",
        "trainer.max_time=null",
        "trainer.num_threads=1",
        "trainer.log_every_n_steps=1",
        "trainer.test_after_fit=false",
        f"trainer.checkpoint_dir={checkpoints}",
        "tracking.backend=csv",
        *model,
    ]
    cmd = [
        sys.executable,
        "-m",
        "text_recognizer.cli",
        "train",
        "--config",
        str(repo_root() / "configs/line.yaml"),
    ]
    return cmd + (["--resume", "last"] if resume else []) + overrides


def checkpoint_state(path: Path) -> tuple[int, int]:
    """(global step, epoch) stored in a Lightning checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return int(ckpt["global_step"]), int(ckpt["epoch"])


def wait_for_checkpoint(proc: subprocess.Popen[bytes], checkpoints: Path, timeout: float) -> Path:
    """The first ``last.ckpt`` (Lightning writes it atomically: once it exists, it is whole)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(checkpoints.glob("line-*/last.ckpt"))
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no last.ckpt while training ran (exit code {proc.poll()})")


def logged_steps(run_dir: Path) -> list[int]:
    """Optimizer steps at which a CSV-logged run recorded its training loss."""
    with (run_dir / "metrics.csv").open() as f:
        return sorted(int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss"))


def test_kill_9_mid_epoch_then_resume_last_continues(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    with (tmp_path / "first.log").open("wb") as log:
        first = subprocess.Popen(
            train_command(checkpoints, resume=False), cwd=tmp_path, stdout=log, stderr=log
        )
    try:
        ckpt = wait_for_checkpoint(first, checkpoints, timeout=600)
        time.sleep(0.5)  # into the next epoch (each takes seconds: rendering alone is about 1 s)
        assert first.poll() is None, "training ended before it could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
    killed_step, killed_epoch = checkpoint_state(ckpt)
    assert 0 < killed_step < EPOCHS * STEPS_PER_EPOCH, "the kill came after training had ended"

    second = subprocess.run(
        train_command(checkpoints, resume=True), cwd=tmp_path, capture_output=True, timeout=900
    )
    output = (second.stdout + second.stderr).decode(errors="replace")
    assert second.returncode == 0, output[-3000:]
    assert str(ckpt) in output, "the resumed run did not name the checkpoint it restored"

    final_step, final_epoch = checkpoint_state(ckpt)  # the same run folder's last.ckpt, written on
    assert final_step == EPOCHS * STEPS_PER_EPOCH
    assert final_epoch == EPOCHS - 1 and killed_epoch <= final_epoch
    runs = sorted((tmp_path / "runs" / "csv" / "text-recognizer").glob("version_*"))
    assert len(runs) == 2, runs
    resumed = logged_steps(runs[-1])
    # it trained only the steps after the checkpoint, not from step 0
    assert resumed[0] >= killed_step and resumed[-1] == final_step - 1, (
        killed_step,
        resumed[:3],
        resumed[-3:],
    )

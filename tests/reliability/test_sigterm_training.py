"""SIGTERM in the first epoch: a checkpoint is written before exit (with step checkpoints every few steps
too), ``--resume last`` continues from it, and the MLflow run is not left RUNNING. A run killed with
``kill -9`` (nothing could end it) is marked KILLED when the next training starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from test_kill_training import STEPS_PER_EPOCH, checkpoint_state, train_command, wait_for_checkpoint

from text_recognizer.training.tracking import (
    HOST_TAG,
    PID_START_TAG,
    PID_TAG,
    TrackingConfig,
    _client,
    _process_start,
    mark_killed_runs,
)

EVERY_N_STEPS = 4


def test_runs_left_running_by_a_dead_process_are_marked_killed(tmp_path: Path) -> None:
    cfg = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = _client(cfg.tracking_uri)
    experiment = client.create_experiment(cfg.experiment, artifact_location=str(tmp_path / "art"))
    dead = subprocess.Popen(["sleep", "0"])
    dead.wait()
    runs = {}
    for name, host, pid in [
        ("killed", socket.gethostname(), dead.pid),
        ("alive", socket.gethostname(), os.getpid()),
        ("elsewhere", "another-host", dead.pid),
    ]:
        run = client.create_run(experiment, run_name=name)
        client.set_tag(run.info.run_id, HOST_TAG, host)
        client.set_tag(run.info.run_id, PID_TAG, str(pid))
        start = _process_start(pid) if pid == os.getpid() else "1"
        client.set_tag(run.info.run_id, PID_START_TAG, start)
        runs[name] = run.info.run_id
    untagged = client.create_run(experiment, run_name="untagged").info.run_id

    assert mark_killed_runs(cfg) == [runs["killed"]]
    status = {n: client.get_run(r).info.status for n, r in runs.items()}
    assert status == {"killed": "KILLED", "alive": "RUNNING", "elsewhere": "RUNNING"}
    assert client.get_run(untagged).info.status == "RUNNING"
    assert mark_killed_runs(cfg) == []  # once


@pytest.mark.slow  # two training subprocesses: about a minute on 2 cores
def test_sigterm_in_the_first_epoch_writes_a_checkpoint_and_resume_continues(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    tracking = [
        "tracking.backend=mlflow",
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"tracking.artifact_location={tmp_path / 'mlartifacts'}",
        "tracking.register_as=''",
    ]
    extra = [f"trainer.checkpoint_every_n_steps={EVERY_N_STEPS}", *tracking]
    with (tmp_path / "first.log").open("wb") as log:
        first = subprocess.Popen(
            train_command(checkpoints, resume=False) + extra, cwd=tmp_path, stdout=log, stderr=log
        )
    try:
        ckpt = wait_for_checkpoint(first, checkpoints, timeout=600)
        step_mark, epoch_mark = checkpoint_state(ckpt)
        # written inside the first epoch, by the step checkpoints
        assert epoch_mark == 0 and step_mark % EVERY_N_STEPS == 0 and 0 < step_mark < STEPS_PER_EPOCH
        time.sleep(0.3)
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    output = (tmp_path / "first.log").read_text()
    assert first.returncode == 128 + signal.SIGTERM, output[-3000:]
    stopped_step, stopped_epoch = checkpoint_state(ckpt)
    assert stopped_step >= step_mark and stopped_epoch == 0, (stopped_step, stopped_epoch)
    assert f"checkpoint at step {stopped_step}" in output

    client = _client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status in ("FAILED", "KILLED"), run.info.status

    second = subprocess.run(
        train_command(checkpoints, resume=True) + extra, cwd=tmp_path, capture_output=True, timeout=900
    )
    assert second.returncode == 0, (second.stdout + second.stderr).decode(errors="replace")[-3000:]
    final_step, _ = checkpoint_state(ckpt)
    assert final_step > stopped_step
    resumed = max(client.search_runs([run.info.experiment_id]), key=lambda r: r.info.start_time)
    steps = sorted(m.step for m in client.get_metric_history(resumed.info.run_id, "train/loss"))
    assert steps and steps[0] >= stopped_step, (stopped_step, steps[:3])  # not from step 0

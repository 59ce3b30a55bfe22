"""A prediction past its deadline is stopped, not just answered: its worker process is killed (its CPU freed)
and replaced, and the next request is served."""

from __future__ import annotations

import threading
import time
from functools import partial
from pathlib import Path

from fastapi.testclient import TestClient

from text_recognizer.serving.api import create_app
from text_recognizer.serving.settings import ServingSettings
from text_recognizer.serving.workers import WorkerPool

from reliability_helpers import cpu_seconds, spinning_png, spinning_predictor, text_line_png

DEADLINE_S = 1.0
#: the answer may come this much after the deadline (the kill, the request's own path; on a loaded machine)
SLACK_S = 2.0


def gone(pid: int, within_s: float) -> bool:
    """True once ``pid`` has exited (reaped, or a zombie: it runs no more), waiting at most ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_a_prediction_past_its_deadline_is_killed_and_the_next_one_works(
    tmp_path: Path, tiny_artifact: Path
) -> None:
    pool = WorkerPool(partial(spinning_predictor, tiny_artifact), size=1)
    settings = ServingSettings(
        model=tiny_artifact,
        db=f"sqlite:///{tmp_path / 'monitoring.db'}",
        ui=False,
        predict_timeout_s=DEADLINE_S,
        max_concurrency=1,
    )
    [pid] = pool.pids()
    used = {"cpu": 0.0}
    stop = threading.Event()

    def sample() -> None:  # the worker's CPU time while it spins, until it is gone
        while not stop.is_set():
            try:
                used["cpu"] = cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    with TestClient(create_app(settings, pool), raise_server_exceptions=False) as client:
        sampler.start()
        started = time.monotonic()
        r = client.post("/predict", content=spinning_png(), headers={"content-type": "image/png"})
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        assert r.status_code == 503 and r.json()["error"]["code"] == "prediction_timeout", r.text
        assert "stopped" in r.json()["error"]["message"]
        assert elapsed < DEADLINE_S + SLACK_S, f"answered after {elapsed:.2f} s"
        assert used["cpu"] > DEADLINE_S / 2, f"the worker used {used['cpu']:.2f} s CPU: it never spun"
        assert gone(pid, within_s=5.0), "the worker still runs after its deadline"

        waited = time.monotonic() + 300  # the replacement loads the model (seconds; more on a busy machine)
        while pool.idle() < 1 and time.monotonic() < waited:
            time.sleep(0.1)
        r = client.post("/predict", content=text_line_png(), headers={"content-type": "image/png"})
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == pool.model_version
        assert pool.pids() and pid not in pool.pids()

"""Two ``text-recognizer serve`` processes sharing one PostgreSQL: a prediction made on one is flagged on the
other, the monitor report counts both, and under concurrent clients with ``kill -9`` of one server no
acknowledged write is lost. (``benchmarks/store_load.py`` runs the same for 32 clients and 30 s.)"""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from text_recognizer.serving.monitor import run_monitor
from text_recognizer.serving.store import Store

from reliability_helpers import (
    Acknowledged,
    line_png,
    lost_writes,
    start_server,
    stop_server,
    write_until_stopped,
)

CLIENTS = 6


def test_two_servers_share_one_postgresql(
    tmp_path: Path, tiny_artifact: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a = start_server(tiny_artifact, postgres_url, tmp_path)
    b = start_server(tiny_artifact, postgres_url, tmp_path)
    try:
        image = base64.b64encode(line_png(7)).decode()
        on_a = httpx.post(f"{a.url}/predict", json={"image": image}, timeout=30)
        assert on_a.status_code == 200, on_a.text
        pid, token = on_a.json()["prediction_id"], on_a.json()["feedback_token"]
        flag = httpx.post(
            f"{b.url}/feedback",
            json={"prediction_id": pid, "correct_text": "x", "feedback_token": token},
            timeout=30,
        )
        assert flag.status_code == 200, flag.text

        acked, stop = Acknowledged(), threading.Event()
        pairs = [(a.url, b.url) if k % 2 else (b.url, a.url) for k in range(CLIENTS)]
        threads = [
            threading.Thread(target=write_until_stopped, args=(p, k, acked, stop, f), daemon=True)
            for k, (p, f) in enumerate(pairs)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked.feedback) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait(timeout=30)
        time.sleep(0.5)  # the clients of b keep writing after a is gone, until they hit a
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert len(acked.feedback) >= 60, f"only {len(acked.feedback)} writes before the deadline"
        missing, lost = lost_writes(postgres_url, acked)
        assert not missing and not lost, f"{len(missing)} predictions and {len(lost)} flags lost"

        after = httpx.post(
            f"{b.url}/feedback",
            json={"prediction_id": pid, "reason": "other", "feedback_token": token},
            timeout=30,
        )
        assert after.status_code == 200  # b still serves, and knows a's predictions
    finally:
        stop_server(a)
        stop_server(b)
    store = Store(postgres_url)
    stored = store.predictions()
    store.close()
    assert set(acked.predictions) | {pid} <= {r.id for r in stored}
    run_monitor(db=postgres_url, out=tmp_path / "monitor", since_hours=None, model=tiny_artifact)
    report = capsys.readouterr().out
    assert f"requests: {len(stored)} " in report
    flagged = sum(r.flagged for r in stored)
    assert (
        flagged >= len({p for _, p, _ in acked.feedback}) and f"flag rate: {flagged}/{len(stored)}" in report
    )

"""``kill -9`` of the real server while clients write predictions and feedback: the SQLite store stays
consistent and holds every write the server acknowledged; a restarted server serves from it."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from reliability_helpers import Acknowledged, Server, start_server, stop_server, write_until_stopped

CLIENTS = 6


def kill_during_writes(server: Server, min_feedback: int) -> Acknowledged:
    """Run the clients; SIGKILL the server once ``min_feedback`` flags are acknowledged; stop the clients."""
    acked, stop = Acknowledged(), threading.Event()
    threads = [
        threading.Thread(target=write_until_stopped, args=(server.url, k, acked, stop), daemon=True)
        for k in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(acked.feedback) < min_feedback and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked.feedback) >= min_feedback, f"only {len(acked.feedback)} writes before the deadline"
    return acked


def check_store(db: Path, acked: Acknowledged) -> None:
    with sqlite3.connect(db) as con:  # opening it recovers the WAL the killed server left
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        predictions = {pid for (pid,) in con.execute("SELECT id FROM predictions")}
        feedback = {fid: (pid, text) for fid, pid, text in con.execute(
            "SELECT id, prediction_id, corrected_text FROM feedback")}  # fmt: skip
    missing_predictions = acked.predictions.keys() - predictions
    assert not missing_predictions, f"{len(missing_predictions)} acknowledged predictions lost"
    lost = [(fid, pid, text) for fid, pid, text in acked.feedback if feedback.get(fid) != (pid, text)]
    assert not lost, f"{len(lost)} of {len(acked.feedback)} acknowledged feedback writes lost: {lost[:3]}"


def run_rounds(tmp_path: Path, model: Path, rounds: int, min_feedback: int) -> None:
    db = tmp_path / "monitoring.db"
    total: list[tuple[int, str, str]] = []
    tokens: dict[str, str] = {}
    for _ in range(rounds):
        server = start_server(model, db, tmp_path)
        try:
            acked = kill_during_writes(server, min_feedback)
        finally:
            stop_server(server)
        total += acked.feedback
        tokens.update(acked.predictions)
        check_store(db, Acknowledged(acked.predictions, total))
    server = start_server(model, db, tmp_path)  # a restarted server takes flags on the old predictions
    try:
        _, pid, _ = total[0]
        flag = {"prediction_id": pid, "correct_text": "after", "feedback_token": tokens[pid]}
        r = httpx.post(f"{server.url}/feedback", json=flag, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        stop_server(server)


def test_kill_9_during_feedback_writes_keeps_every_acknowledged_write(
    tmp_path: Path, tiny_artifact: Path
) -> None:
    run_rounds(tmp_path, tiny_artifact, rounds=1, min_feedback=60)


@pytest.mark.slow
def test_repeated_kill_9_during_writes(tmp_path: Path, tiny_artifact: Path) -> None:
    run_rounds(tmp_path, tiny_artifact, rounds=5, min_feedback=300)

"""A store that cannot be written (SQLite file read-only or deleted, PostgreSQL stopped): predictions and
feedback answer ``503 store_unavailable``, ``/health`` 503 ``store: unavailable``; no request is answered 200
with an id the store does not hold; once the store is back the same process serves again."""

from __future__ import annotations

import base64
import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from text_recognizer.serving.api import create_app
from text_recognizer.serving.settings import ServingSettings

from postgres_helpers import PostgresCluster
from reliability_helpers import Acknowledged, line_png, lost_writes


@contextlib.contextmanager
def served(model: Path, db_url: str) -> Iterator[TestClient]:
    app = create_app(ServingSettings(model=model, db=db_url, ui=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


class Traffic:
    """Predictions with new images each time; remembers every id answered 200."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.acked = Acknowledged()
        self.sent = 0

    def predict(self) -> Any:
        self.sent += 1
        image = base64.b64encode(line_png(self.sent)).decode()
        r = self.client.post("/predict", json={"image": image})
        if r.status_code == 200:
            self.acked.predictions[r.json()["prediction_id"]] = r.json()["feedback_token"]
        return r

    def flag(self, pid: str, text: str) -> dict[str, str]:
        """A correction of an acknowledged prediction, with its feedback token."""
        return {"prediction_id": pid, "correct_text": text, "feedback_token": self.acked.predictions[pid]}

    def expect_ok(self) -> str:
        r = self.predict()
        assert r.status_code == 200, r.text
        assert self.client.get("/health").json()["store"] == "ok"
        pid: str = r.json()["prediction_id"]
        return pid

    def expect_unavailable(self, earlier: str, requests: int = 5) -> None:
        for _ in range(requests):
            r = self.predict()
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "store_unavailable"
        flag = self.client.post("/feedback", json=self.flag(earlier, "x"))
        assert flag.status_code == 503 and flag.json()["error"]["code"] == "store_unavailable", flag.text
        health = self.client.get("/health")
        assert health.status_code == 503 and health.json()["store"] == "unavailable", health.text


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable: ``chattr +i`` as root (root ignores permission bits), else ``chmod a-w``."""
    if os.geteuid() == 0:
        result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot make a file immutable here as root: {result.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        try:
            yield
        finally:
            path.chmod(mode)


def test_sqlite_file_made_read_only(tmp_path: Path, tiny_artifact: Path) -> None:
    db = tmp_path / "monitoring.db"
    url = f"sqlite:///{db}"
    with served(tiny_artifact, url) as client:
        traffic = Traffic(client)
        earlier = traffic.expect_ok()
        with read_only(db):
            traffic.expect_unavailable(earlier)
        traffic.expect_ok()  # writable again: the same process records again
        assert client.post("/feedback", json=traffic.flag(earlier, "y")).status_code == 200
    missing, _ = lost_writes(url, traffic.acked)
    assert not missing, f"{len(missing)} predictions answered 200 are not in the store"


def test_sqlite_file_deleted_while_running(tmp_path: Path, tiny_artifact: Path) -> None:
    db = tmp_path / "monitoring.db"
    with served(tiny_artifact, f"sqlite:///{db}") as client:
        traffic = Traffic(client)
        earlier = traffic.expect_ok()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        traffic.expect_unavailable(earlier)  # not a 200 into an unlinked file, not a 404 for the flag
        assert not db.exists(), "the store must not recreate an empty database in place of the deleted one"


def test_postgresql_stopped_mid_run_then_started(
    tiny_artifact: Path, postgres: PostgresCluster, postgres_url: str
) -> None:
    with served(tiny_artifact, postgres_url) as client:
        traffic = Traffic(client)
        earlier = traffic.expect_ok()
        postgres.stop()
        try:
            traffic.expect_unavailable(earlier)
        finally:
            postgres.start()
        traffic.expect_ok()  # the pool reconnects: no restart
        assert client.post("/feedback", json=traffic.flag(earlier, "y")).status_code == 200
    missing, _ = lost_writes(postgres_url, traffic.acked)
    assert not missing, f"{len(missing)} predictions answered 200 are not in the store"
    assert traffic.sent - len(traffic.acked.predictions) == 5  # exactly the requests made while it was down

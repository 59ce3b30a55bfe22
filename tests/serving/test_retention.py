"""Retention: rows and upload-cache files older than the setting are deleted, newer ones kept (SQLite and
PostgreSQL)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from test_store import prediction

from text_recognizer.serving.retention import Pruned, RetentionTask, apply_retention
from text_recognizer.serving.store import Store

from serving_helpers import png_bytes

DAYS = 30


@pytest.fixture
def store(any_db_url: str) -> Iterator[Store]:
    s = Store(any_db_url)
    yield s
    s.close()


def backdate(store: Store, prediction_id: str, days: float) -> None:
    when = datetime.now(UTC) - timedelta(days=days)
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE predictions SET created_at = :t WHERE id = :i"), {"t": when, "i": prediction_id}
        )


def counts(store: Store) -> tuple[int, int, int]:
    with store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("predictions", "feedback", "images")
        )


def test_old_rows_and_cache_files_are_deleted_new_ones_kept(store: Store, tmp_path: Path) -> None:
    old_image, shared_image, new_image = png_bytes(text="one"), png_bytes(text="two"), png_bytes(text="three")
    old = store.record_prediction(old_image, prediction("old"), 1.0, "json")
    old_shared = store.record_prediction(shared_image, prediction("old, image sent again"), 1.0, "json")
    store.record_prediction(shared_image, prediction("new, same image"), 1.0, "json")
    new = store.record_prediction(new_image, prediction("new"), 1.0, "json")
    store.record_feedback(old, "old correction", "wrong_text")
    store.record_feedback(new, "new correction", "wrong_text")
    backdate(store, old, DAYS + 1)
    backdate(store, old_shared, DAYS + 5)
    backdate(store, new, DAYS - 1)

    cache = tmp_path / "gradio"
    (cache / "abc").mkdir(parents=True)
    stale, fresh = cache / "abc" / "stale.png", cache / "fresh.png"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    past = time.time() - (DAYS + 1) * 86400
    os.utime(stale, (past, past))

    assert counts(store) == (4, 2, 3)
    assert apply_retention(store, DAYS, cache) == Pruned(predictions=2, feedback=1, images=1, cache_files=1)
    assert counts(store) == (2, 1, 2)  # the image sent again recently stays, with its new prediction
    assert {r.id for r in store.predictions()} >= {new}
    assert not stale.exists() and not (cache / "abc").exists() and fresh.exists()
    assert apply_retention(store, DAYS, cache) == Pruned(0, 0, 0, 0)


def test_the_server_task_prunes_at_start(store: Store) -> None:
    old = store.record_prediction(png_bytes(text="four"), prediction("old"), 1.0, "json")
    backdate(store, old, DAYS + 1)
    task = RetentionTask(store, DAYS, cache=None)
    try:
        deadline = time.monotonic() + 30
        while counts(store)[0] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        task.stop()
    assert counts(store) == (0, 0, 0)

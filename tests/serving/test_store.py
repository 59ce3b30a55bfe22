"""The monitoring store: durability settings, rows, de-duplicated images, and the feedback export."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import event, text

from text_recognizer.data.folder import FolderSource, read_labels
from text_recognizer.inference.types import LineResult, Prediction
from text_recognizer.serving.errors import UnknownPrediction
from text_recognizer.serving.feedback_export import export_feedback
from text_recognizer.serving.store import Store, default_db_url

from serving_helpers import png_bytes


def prediction(text_: str = "hello", width: int = 160, height: int = 40) -> Prediction:
    return Prediction(
        text=text_,
        confidence=0.8,
        lines=[LineResult(text_, 0.8, (0, 0, width, height))],
        model_version="m-1",
        seconds=0.01,
        image_stats={"width": width, "height": height, "brightness": 240.0, "polarity": "dark_ink"},
    )


@pytest.fixture
def store(any_db_url: str) -> Iterator[Store]:
    s = Store(any_db_url)
    yield s
    s.close()


def test_sqlite_runs_in_wal_mode_with_full_sync(db_url: str) -> None:
    store = Store(db_url)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()


def test_default_location_is_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXT_RECOGNIZER_HOME", str(tmp_path / "home"))
    assert default_db_url() == f"sqlite:///{tmp_path / 'home' / 'monitoring.db'}"
    Store().close()
    assert (tmp_path / "home" / "monitoring.db").is_file()


def test_rows_and_deduplicated_images(store: Store) -> None:
    png = png_bytes()
    ids = [store.record_prediction(png, prediction(), 12.5, "json") for _ in range(3)]
    other = store.record_prediction(png_bytes(text="other"), prediction("other"), 20.0, "ui")
    assert len(set(ids)) == 3
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM images")).scalar() == 2
        row = conn.execute(
            text(
                "SELECT width, height, brightness, polarity, text, confidence, latency_ms, model_version, "
                "source FROM predictions WHERE id = :id"
            ),
            {"id": other},
        ).one()
    assert tuple(row) == (160, 40, 240.0, "dark_ink", "other", 0.8, 20.0, "m-1", "ui")
    fid = store.record_feedback(ids[0], "hullo", "wrong_text")
    records = {r.id: r for r in store.predictions()}
    assert records[ids[0]].flagged and not records[ids[1]].flagged
    assert fid >= 1
    with pytest.raises(UnknownPrediction):
        store.record_feedback("f" * 32, "x", "other")


def test_concurrent_writers_of_the_same_image(store: Store) -> None:
    png = png_bytes()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: store.record_prediction(png, prediction(), 1.0, "json"), range(16)))
    assert len(set(ids)) == 16
    assert len(store.predictions()) == 16


def _queue_behind_a_commit(store: Store, n_good: int, bad: bool) -> tuple[list[Future[str]], Future[None]]:
    """``n_good`` predictions (and a failing write when ``bad``) queued while another write holds the
    commit; returns their futures once the held commit is released."""
    release = threading.Event()

    def fail(session: object) -> None:
        raise ValueError("a bad write")

    pool = ThreadPoolExecutor(n_good + 2)
    holder = pool.submit(store._commit_together, "write", lambda session: release.wait(10) and None)
    while not store._committing:
        time.sleep(0.01)
    good = [
        pool.submit(store.record_prediction, png_bytes(), prediction(), 1.0, "json") for _ in range(n_good)
    ]
    failing = pool.submit(store._commit_together, "write", fail if bad else lambda session: None)
    while len(store._queued) < n_good + 1:
        time.sleep(0.01)
    release.set()
    holder.result()
    pool.shutdown(wait=True)
    return good, failing


def test_writes_queued_during_a_commit_are_committed_together(store: Store) -> None:
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda _: commits.append(1))
    good, _ = _queue_behind_a_commit(store, 15, bad=False)
    assert len({f.result() for f in good}) == 15
    assert len(store.predictions()) == 15
    assert len(commits) == 1  # one transaction for the 15 (the held write wrote nothing)


def test_a_failing_write_in_a_group_fails_alone(store: Store) -> None:
    good, failing = _queue_behind_a_commit(store, 3, bad=True)
    with pytest.raises(ValueError, match="a bad write"):
        failing.result()
    assert len({f.result() for f in good}) == 3
    assert len(store.predictions()) == 3


def test_committed_writes_survive_a_new_connection(any_db_url: str) -> None:
    first = Store(any_db_url)
    pid = first.record_prediction(png_bytes(), prediction(), 1.0, "json")
    first.record_feedback(pid, "fixed", "wrong_text")
    first.close()
    again = Store(any_db_url)
    assert [r.id for r in again.predictions()] == [pid]
    assert [s.text for s in again.corrected_samples()] == ["fixed"]
    again.close()


def test_export_writes_a_folder_training_reads(store: Store, any_db_url: str, tmp_path: Path) -> None:
    a, b, c = png_bytes(text="one"), png_bytes(text="two"), png_bytes(text="three", fmt="JPEG", mode="RGB")
    pa = store.record_prediction(a, prediction("onc"), 1.0, "ui")
    pb = store.record_prediction(b, prediction("tvo"), 1.0, "ui")
    pc = store.record_prediction(c, prediction("three"), 1.0, "json")
    store.record_prediction(a, prediction("one"), 1.0, "json")  # never flagged: not exported
    store.record_feedback(pa, "one", "wrong_text")
    store.record_feedback(pb, "two?", "wrong_text")
    store.record_feedback(pb, "two", "wrong_text")  # the latest correction wins
    store.record_feedback(pc, None, "not_handwriting")  # a flag without a correction: not exported
    out = tmp_path / "corrections"
    export_feedback(out, any_db_url)
    labels = read_labels(out)
    assert [e.text for e in labels] == ["one", "two"]
    lines = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [line["image"] for line in lines] == [f"images/{pa}-000.png", f"images/{pb}-000.png"]
    source = FolderSource(out)
    assert len(source) == 2 and source[1].text == "two"
    assert all(0 < source[i].image.shape[0] <= 40 and 0 < source[i].image.shape[1] <= 160 for i in range(2))
    export_feedback(out, any_db_url)  # again: same result, no duplicates
    assert len(read_labels(out)) == 2

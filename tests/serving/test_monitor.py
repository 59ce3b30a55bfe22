"""The monitor report and plots over a small store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from text_recognizer.inference.types import Prediction
from text_recognizer.serving.monitor import drift, run_monitor
from text_recognizer.serving.store import PredictionRow, Store

from serving_helpers import png_bytes


def fill(db_url: str, n: int = 30) -> list[str]:
    store = Store(db_url)
    now = datetime.now(UTC)
    ids = []
    for i in range(n):
        w, h = 300 + 10 * i, 60
        pred = Prediction(
            text=f"t{i}",
            confidence=i / n,
            lines=[],
            model_version="m-1",
            seconds=0.01,
            image_stats={
                "width": w,
                "height": h,
                "brightness": 200.0 + i,
                "polarity": "dark_ink" if i % 3 else "light_ink",
            },
        )
        pid = store.record_prediction(png_bytes(text=str(i)), pred, latency_ms=10.0 + i, source="json")
        with store.engine.begin() as conn:  # spread over the last 30 hours
            conn.execute(
                update(PredictionRow)
                .where(PredictionRow.id == pid)
                .values(created_at=now - timedelta(hours=i))
            )
        ids.append(pid)
    for pid in ids[:6]:
        store.record_feedback(pid, "fixed", "wrong_text")
    store.record_feedback(ids[0], "t0x", "wrong_text")  # the latest correction counts: 1 edit
    store.close()
    return ids


REFERENCE = {
    "n": 64,
    "width_mean": 310.0,
    "height_mean": 64.0,
    "brightness_mean": 180.0,
    "brightness_std": 10.0,
    "dark_ink_fraction": 0.5,
}


def test_report_and_plots(
    any_db_url: str, tmp_path: Path, tiny_artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(any_db_url)
    out = tmp_path / "monitor"
    run_monitor(db=any_db_url, out=out, since_hours=None, model=tiny_artifact)
    report = capsys.readouterr().out
    assert "requests: 30" in report
    assert "latency ms: p50 24.5" in report
    assert "flag rate: 6/30 = 20.0%" in report
    # t0 -> t0x: 1 edit over 3 characters; t1..t5 -> fixed: 5 edits each over 5 characters
    cer = (1 + 5 * 5) / (3 + 5 * 5)
    assert f"m-1 predictions 30 flagged 6 ( 20.0%) corrected 6 CER on corrected {cer:.3f}" in (
        " ".join(report.split())
    )
    assert "CER on corrected predictions per hour:" in report
    assert "confidence: mean 0.483" in report
    assert "input drift" in report
    for name in ("requests.png", "latency.png", "confidence.png", "inputs.png", "quality.png"):
        assert (out / name).stat().st_size > 1000
    run_monitor(db=any_db_url, out=out, since_hours=10.5, model=tiny_artifact)
    assert "requests: 11" in capsys.readouterr().out


def test_drift_against_a_reference(db_url: str) -> None:
    fill(db_url)
    store = Store(db_url)
    lines = {d.feature: d for d in drift(store.predictions(), REFERENCE)}
    store.close()
    assert set(lines) == {"width", "height", "brightness", "dark ink"}
    assert not lines["width"].drifted and not lines["height"].drifted
    assert lines["brightness"].drifted  # mean 214.5 vs 180 +- 10
    assert lines["dark ink"].production == pytest.approx(20 / 30)


def test_without_a_reference_or_data(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_monitor(db=db_url, out=tmp_path / "m", since_hours=None, model=tmp_path / "none")
    assert "no predictions recorded" in capsys.readouterr().out
    fill(db_url, 3)
    run_monitor(db=db_url, out=tmp_path / "m", since_hours=None, model=tmp_path / "none")
    assert "training reference unavailable" in capsys.readouterr().out

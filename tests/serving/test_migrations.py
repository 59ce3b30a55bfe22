"""Schema migrations: a database made before migrations existed, a schema behind the code, `db upgrade`."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from test_store import prediction
from typer.testing import CliRunner

from text_recognizer.cli import app
from text_recognizer.serving.migrate import MIGRATIONS, SchemaBehind, ensure_schema, upgrade
from text_recognizer.serving.store import Store

from serving_helpers import png_bytes

#: what ``Store`` created (``metadata.create_all``) before migrations existed, as SQLite printed it
PRE_MIGRATION_SCHEMA = """
CREATE TABLE images (sha256 VARCHAR(64) NOT NULL, data BLOB NOT NULL, format VARCHAR(16) NOT NULL,
    created_at DATETIME NOT NULL, PRIMARY KEY (sha256));
CREATE TABLE predictions (id VARCHAR(32) NOT NULL, created_at DATETIME NOT NULL,
    image_sha256 VARCHAR(64) NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, brightness FLOAT,
    polarity VARCHAR(32), text TEXT NOT NULL, confidence FLOAT NOT NULL, n_lines INTEGER NOT NULL,
    latency_ms FLOAT NOT NULL, model_version VARCHAR(200) NOT NULL, source VARCHAR(16) NOT NULL,
    PRIMARY KEY (id), FOREIGN KEY(image_sha256) REFERENCES images (sha256));
CREATE INDEX ix_predictions_image_sha256 ON predictions (image_sha256);
CREATE INDEX ix_predictions_created_at ON predictions (created_at);
CREATE TABLE feedback (id INTEGER NOT NULL, prediction_id VARCHAR(32) NOT NULL, created_at DATETIME NOT NULL,
    corrected_text TEXT, reason VARCHAR(32) NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(prediction_id) REFERENCES predictions (id));
CREATE INDEX ix_feedback_prediction_id ON feedback (prediction_id);
CREATE INDEX ix_feedback_created_at ON feedback (created_at);
INSERT INTO images VALUES ('aa', x'89504e47', 'png', '2025-11-30 10:00:00.000000');
INSERT INTO predictions VALUES ('0123456789abcdef0123456789abcdef', '2025-11-30 10:00:00.000000', 'aa',
    160, 40, 240.0, 'dark_ink', 'helo', 0.8, 1, 12.0, 'm-0', 'json');
INSERT INTO feedback VALUES (1, '0123456789abcdef0123456789abcdef', '2025-11-30 10:01:00.000000', 'hello',
    'wrong_text');
"""
OLD_ID = "0123456789abcdef0123456789abcdef"

#: this code's latest revision
HEAD = "0002"
#: a further migration, in a copy of the migrations folder, so the database is one revision behind
NEXT = "0900"
NEXT_REVISION = f"""
import sqlalchemy as sa
from alembic import op

revision = "{NEXT}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("client", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("predictions", "client")
"""


def revision(url: str) -> str | None:
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    return value


def test_a_pre_migration_sqlite_database_is_stamped_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as con:
        con.executescript(PRE_MIGRATION_SCHEMA)
    store = Store(f"sqlite:///{path}")
    try:
        assert revision(f"sqlite:///{path}") == HEAD  # stamped 0001, then migrated
        assert "line_boxes" in columns(f"sqlite:///{path}")
        [old] = store.predictions()
        assert (old.id, old.flagged, old.width, old.model_version) == (OLD_ID, True, 160, "m-0")
        assert [(s.text, s.boxes) for s in store.corrected_samples()] == [("hello", None)]  # no boxes then
        new = store.record_prediction(png_bytes(), prediction(), 1.0, "json")
        assert store.record_feedback(OLD_ID, "hello!", "wrong_text") == 2
        assert store.record_feedback(new, "hello!", "wrong_text") == 3
        assert {r.id for r in store.predictions()} == {OLD_ID, new}
        boxes = {s.prediction_id: s.boxes for s in store.corrected_samples()}
        assert boxes == {OLD_ID: None, new: (prediction().lines[0].box,)}
    finally:
        store.close()


@pytest.fixture
def two_revisions(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "0900_client.py").write_text(NEXT_REVISION)
    return folder


def at_head_with_a_row(url: str) -> str:
    store = Store(url)
    pid = store.record_prediction(png_bytes(), prediction(), 1.0, "json")
    store.close()
    return pid


def prediction_ids(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = list(conn.execute(text("SELECT id FROM predictions")).scalars())
    engine.dispose()
    return ids


def columns(url: str) -> set[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        names = {c["name"] for c in inspect(conn).get_columns("predictions")}
    engine.dispose()
    return names


def test_a_database_at_the_baseline_gets_the_line_boxes_column(any_db_url: str, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline"
    shutil.copytree(MIGRATIONS, baseline, ignore=shutil.ignore_patterns("__pycache__", "0002_*"))
    engine = create_engine(any_db_url)
    at = datetime(2025, 11, 30, 10, tzinfo=UTC)
    try:
        assert upgrade(engine, baseline) == (None, "0001")
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO images VALUES ('aa', :data, 'png', :at)"), {"data": png_bytes(), "at": at}
            )
            conn.execute(
                text(
                    "INSERT INTO predictions VALUES (:id, :at, 'aa', 160, 40, 240.0, 'dark_ink', 'helo', 0.8,"
                    " 1, 12.0, 'm-0', 'json')"
                ),
                {"id": OLD_ID, "at": at},
            )
            conn.execute(
                text("INSERT INTO feedback VALUES (1, :id, :at, 'hello', 'wrong_text')"),
                {"id": OLD_ID, "at": at},
            )
    finally:
        engine.dispose()
    assert "line_boxes" not in columns(any_db_url)
    if not any_db_url.startswith("sqlite"):  # a server database migrates as a deployment step
        with pytest.raises(SchemaBehind):
            Store(any_db_url)
        assert CliRunner().invoke(app, ["db", "upgrade", "--db", any_db_url]).exit_code == 0
    store = Store(any_db_url)  # SQLite: migrated on start
    try:
        assert revision(any_db_url) == HEAD and "line_boxes" in columns(any_db_url)
        assert [(s.prediction_id, s.text, s.boxes) for s in store.corrected_samples()] == [
            (OLD_ID, "hello", None)
        ]
    finally:
        store.close()


def test_sqlite_upgrades_on_start(db_url: str, two_revisions: Path) -> None:
    pid = at_head_with_a_row(db_url)
    engine = create_engine(db_url)
    ensure_schema(engine, auto_upgrade=False, script_location=two_revisions)
    engine.dispose()
    assert revision(db_url) == NEXT and "client" in columns(db_url)
    assert prediction_ids(db_url) == [pid]


def test_postgresql_behind_refuses_to_start_unless_auto_upgrade(
    postgres_url: str, two_revisions: Path
) -> None:
    pid = at_head_with_a_row(postgres_url)
    engine = create_engine(postgres_url)
    try:
        with pytest.raises(SchemaBehind, match="text-recognizer db upgrade"):
            ensure_schema(engine, auto_upgrade=False, script_location=two_revisions)
        assert revision(postgres_url) == HEAD
        ensure_schema(engine, auto_upgrade=True, script_location=two_revisions)
        assert revision(postgres_url) == NEXT and "client" in columns(postgres_url)
        assert prediction_ids(postgres_url) == [pid]
        assert upgrade(engine, two_revisions) == (NEXT, NEXT)  # idempotent
    finally:
        engine.dispose()


def test_a_revision_the_code_does_not_know_refuses_to_start(any_db_url: str) -> None:
    at_head_with_a_row(any_db_url)
    engine = create_engine(any_db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    with pytest.raises(SchemaBehind, match="does not know"):
        Store(any_db_url)


def test_db_upgrade_command_creates_the_schema(any_db_url: str) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", any_db_url])
    assert result.exit_code == 0, result.output
    assert f"schema revision {HEAD} (was empty)" in result.output
    assert revision(any_db_url) == HEAD
    again = CliRunner().invoke(app, ["db", "upgrade", "--db", any_db_url])
    assert again.exit_code == 0 and "(was" not in again.output


@pytest.mark.slow  # four interpreters importing SQLAlchemy and Alembic: about 30 s on 2 busy cores
def test_processes_opening_a_new_sqlite_file_together_all_start(tmp_path: Path) -> None:
    """``serve --workers N`` on a brand-new file: every worker opens the store at once; none may fail on a
    table another created first."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = (
        "import sys, time\n"
        "from text_recognizer.serving.store import Store\n"
        "while time.time() < float(sys.argv[2]): pass\n"  # start together
        "Store(sys.argv[1]).close()\n"
    )
    start_at = str(time.time() + 4.0)
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url, start_at], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=120)[1].decode()[-1500:] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    with create_engine(url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1

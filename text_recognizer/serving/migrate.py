"""Schema migrations of the monitoring store (Alembic, scripts in ``serving/migrations/``).

``text-recognizer db upgrade`` applies pending migrations. Opening a :class:`~.store.Store` calls
:func:`ensure_schema`, which migrates on start only where that is safe:

* an empty database gets the whole schema (there is nothing to strand);
* a database made by the code before migrations existed (the tables, no ``alembic_version``) is stamped
  with the baseline, which is exactly that schema (no table is touched);
* pending migrations run on a SQLite file (one host owns it; the server is its only writer) and on a server
  database only with ``TEXT_RECOGNIZER_DB_AUTO_UPGRADE=1``. Otherwise the server refuses to start with
  :class:`SchemaBehind`, since other replicas on the old code may still be writing: run ``db upgrade`` as a
  deployment step first.
* a revision this code does not know (a newer deployment migrated the database) also refuses to start.

On PostgreSQL, migrations hold an advisory lock, so replicas starting together migrate once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, inspect, text

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
#: the revision whose schema is what the store created before migrations existed
BASELINE = "0001"
#: Alembic's bookkeeping table, as the store's health probe writes it
VERSION_TABLE = Table("alembic_version", MetaData(), Column("version_num", String(32), primary_key=True))
#: any fixed number: the key of the PostgreSQL advisory lock held while migrating
_LOCK_KEY = 0x7E47_5245


class SchemaBehind(RuntimeError):
    """The database schema is not the one this code needs, and migrating it now is not safe."""


@dataclass(frozen=True)
class SchemaState:
    """``current``: the stamped revision (None: unstamped); ``legacy``: store tables without a stamp."""

    current: str | None
    head: str
    legacy: bool
    empty: bool

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def _config(connection: Connection, script_location: Path) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    return cfg


def _head(script_location: Path) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(script_location)).get_current_head()
    assert head is not None, f"no migrations in {script_location}"
    return head


def schema_state(connection: Connection, script_location: Path = MIGRATIONS) -> SchemaState:
    """Where the database stands against the migrations in ``script_location``."""
    tables = set(inspect(connection).get_table_names())
    current = None
    if VERSION_TABLE.name in tables:
        current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    legacy = current is None and "predictions" in tables
    empty = not (tables - {VERSION_TABLE.name})
    return SchemaState(current, _head(script_location), legacy, empty)


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive ``flock`` on ``<database>.migrate-lock`` for a SQLite file: processes started together
    (``serve --workers N`` on a new file) migrate one after the other, the later ones finding it at head.
    SQLite's own write lock does not cover the schema check before the first ``CREATE TABLE``."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    import fcntl

    lock = Path(database).expanduser().with_name(Path(database).name + ".migrate-lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection holding the migration lock (PostgreSQL advisory lock; a file lock for SQLite)."""
    with _sqlite_file_lock(engine), engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            connection.commit()
        try:
            yield connection
        finally:
            if engine.dialect.name == "postgresql":
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                connection.commit()


def upgrade(engine: Engine, script_location: Path = MIGRATIONS) -> tuple[str | None, str]:
    """Stamp a pre-migration database with the baseline, then apply every pending migration.

    Returns ``(revision before, revision after)``.
    """
    from alembic import command

    with _migration_lock(engine) as connection:
        state = schema_state(connection, script_location)
        connection.commit()
        before = state.current
        cfg = _config(connection, script_location)
        if state.legacy:
            log.info("monitoring store has the pre-migration schema: stamping revision %s", BASELINE)
            command.stamp(cfg, BASELINE)  # type: ignore[arg-type]
            before = BASELINE
        command.upgrade(cfg, "head")  # type: ignore[arg-type]
        connection.commit()
        after = schema_state(connection, script_location).current
    assert after is not None
    return before, after


def ensure_schema(engine: Engine, auto_upgrade: bool, script_location: Path = MIGRATIONS) -> None:
    """Bring the schema to the latest migration where that is safe (see the module docstring).

    Raises:
        SchemaBehind: migrations are pending on a server database without ``auto_upgrade``, or the
            database has a revision this code does not know.
    """
    from alembic.script import ScriptDirectory

    with engine.connect() as connection:
        state = schema_state(connection, script_location)
    if state.at_head:
        return
    where = engine.url.render_as_string()
    known = {s.revision for s in ScriptDirectory(str(script_location)).walk_revisions()}
    if state.current is not None and state.current not in known:
        raise SchemaBehind(
            f"the monitoring store {where} is at schema revision {state.current}, which this version of "
            f"text-recognizer does not know (its latest is {state.head}); deploy the newer version"
        )
    baseline_only = state.legacy and state.head == BASELINE
    if state.empty or baseline_only or auto_upgrade or engine.dialect.name == "sqlite":
        before, after = upgrade(engine, script_location)
        log.info("monitoring store %s migrated from %s to %s", where, before or "nothing", after)
        return
    raise SchemaBehind(
        f"the monitoring store {where} is at schema revision {state.current or BASELINE} and this version "
        f"needs {state.head}: run `text-recognizer db upgrade --db URL` once (a deployment step), or set "
        "TEXT_RECOGNIZER_DB_AUTO_UPGRADE=1 to migrate on start"
    )


def upgrade_url(url: str | None) -> None:
    """``text-recognizer db upgrade``: migrate the store at ``url`` (default: the settings' store) to head."""
    from text_recognizer.serving.settings import ServingSettings
    from text_recognizer.serving.store import StoreOptions, make_engine

    settings = ServingSettings.from_env(db=url)
    engine = make_engine(settings.db, StoreOptions.from_settings(settings))
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    where = engine.url.render_as_string()
    print(f"{where}: schema revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))

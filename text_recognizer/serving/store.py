"""The monitoring store: every prediction and every flag, in SQLite by default or PostgreSQL (any SQLAlchemy
database).

Tables:

* ``images``: the uploaded files by sha256 of their bytes (stored once however often they are sent).
* ``predictions``: time, image hash and stats (width, height, brightness, polarity), text, confidence,
  latency, model version, source (``json``, ``url``, ``upload``, ``ui``, ``lambda``), and the box of each
  line read (``line_boxes``: JSON ``[[x_min, y_min, x_max, y_max], ...]`` in the order of the text's lines,
  :data:`~text_recognizer.inference.types.Box` convention; NULL on rows stored before revision 0002).
* ``feedback``: a flag on a prediction with the user's corrected text and a reason.

Images live in the database (``bytea`` on PostgreSQL), not in a file or object store: the image and its
prediction are written in one transaction, so an acknowledged prediction always has its image, every replica
and Lambda container reaches both with one URL, and one backup holds all. Images are capped by
``max_image_bytes`` and stored once per content.

Each write is in a transaction committed before the API answers. Predictions that arrive while another is
being committed are committed together, in the next transaction (group commit: one fsync and one connection
for all of them; each caller still waits for its own commit, and a failed group is retried one write at a
time so that one bad write fails alone). Under load that is what lets SQLite keep up with the model.
SQLite runs in WAL mode with ``synchronous=FULL``, so a crash (even ``kill -9`` or power loss) loses no
acknowledged write; PostgreSQL commits are durable by default. A write that fails raises
:class:`StoreUnavailable` (HTTP 503): the API never answers with an id it did not store. Alembic manages
the schema (:mod:`text_recognizer.serving.migrate`).

Connections: SQLite opens the file per session (``mode=rw``: a deleted file is an error, not a new empty
database; a file made read-only is seen at once). A server database gets a pool (``db_pool_size``, pre-ping,
connect and statement timeouts); a Lambda container keeps one connection, reused across invocations.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image
from sqlalchemy import (
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    delete,
    event,
    insert,
    make_url,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

from text_recognizer.inference.types import Box, Prediction
from text_recognizer.paths import home
from text_recognizer.serving.errors import StoreUnavailable, UnknownPrediction
from text_recognizer.serving.settings import ServingSettings

log = logging.getLogger(__name__)
DB_FILE = "monitoring.db"
#: /health reports the store unavailable for this long after a request's write failed
FAILURE_MEMORY_S = 10.0


def default_db_url() -> str:
    """SQLite in ``<TEXT_RECOGNIZER_HOME>/monitoring.db``."""
    return f"sqlite:///{home() / DB_FILE}"


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ImageRow(Base):
    __tablename__ = "images"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    format: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class PredictionRow(Base):
    __tablename__ = "predictions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    image_sha256: Mapped[str] = mapped_column(ForeignKey("images.sha256"), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    brightness: Mapped[float | None] = mapped_column(Float, nullable=True)
    polarity: Mapped[str | None] = mapped_column(String(32), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    n_lines: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    line_boxes: Mapped[str | None] = mapped_column(Text, nullable=True)


class FeedbackRow(Base):
    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    corrected_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str] = mapped_column(String(32))


@dataclass(frozen=True)
class PredictionRecord:
    """One prediction as the monitor reads it (no image bytes)."""

    id: str
    created_at: datetime
    width: int
    height: int
    brightness: float | None
    polarity: str | None
    confidence: float
    latency_ms: float
    model_version: str
    source: str
    flagged: bool


@dataclass(frozen=True)
class CorrectionRecord:
    """A prediction's latest correction as the monitor reads it: when it was predicted, by which model,
    what the model said and what the user says it should have said."""

    prediction_id: str
    created_at: datetime
    model_version: str
    predicted: str
    corrected: str


@dataclass(frozen=True)
class CorrectedSample:
    """A flagged prediction with its correction: the image file and the right text."""

    prediction_id: str
    image_sha256: str
    image: bytes
    format: str
    text: str
    n_lines: int
    #: the model's text, one predicted line per text line (what the correction is aligned with)
    predicted_text: str = ""
    model_version: str = ""
    #: the predictor's box of each predicted line (None: stored before the store kept boxes)
    boxes: tuple[Box, ...] | None = None


@dataclass(frozen=True)
class StoreOptions:
    """How the store connects and migrates (see :class:`ServingSettings` for the meaning of each).

    Attributes:
        single_connection: keep exactly one connection (a Lambda container serves one request at a time, so
            its one connection is reused by every invocation and never multiplied by concurrency).
    """

    auto_upgrade: bool
    pool_size: int
    connect_timeout_s: float
    statement_timeout_s: float
    single_connection: bool = False

    @classmethod
    def from_settings(cls, settings: ServingSettings, single_connection: bool = False) -> StoreOptions:
        return cls(
            auto_upgrade=settings.db_auto_upgrade,
            pool_size=settings.db_pool_size,
            connect_timeout_s=settings.db_connect_timeout_s,
            statement_timeout_s=settings.db_statement_timeout_s,
            single_connection=single_connection,
        )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def make_engine(url: str | None = None, options: StoreOptions | None = None, create: bool = True) -> Engine:
    """An engine for ``url`` (default :func:`default_db_url`).

    SQLite: WAL and full sync on each connection, a new connection per session; with ``create`` False the
    file must exist (``mode=rw``). Other databases: a pool with pre-ping and timeouts from ``options``.
    """
    url = url or default_db_url()
    options = options or StoreOptions.from_settings(ServingSettings.from_env())
    path = sqlite_file(url)
    if path is not None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, poolclass=NullPool)
        else:
            uri = f"sqlite:///file:{quote(str(path.resolve()))}?mode=rw&uri=true"
            engine = create_engine(uri, poolclass=NullPool)
    elif make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url)
    else:
        engine = create_engine(url, **_pool_arguments(url, options))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _pool_arguments(url: str, options: StoreOptions) -> dict[str, Any]:
    """Pool and timeout arguments of ``create_engine`` for a server database."""
    size = 1 if options.single_connection else options.pool_size
    args: dict[str, Any] = {
        "pool_pre_ping": True,  # a connection the server closed (restart, idle timeout) is replaced, not used
        "pool_size": size,
        "max_overflow": 0 if options.single_connection else size,
        "pool_timeout": options.connect_timeout_s,
        "pool_recycle": 1800,
    }
    if make_url(url).get_backend_name() == "postgresql":
        args["connect_args"] = {
            "connect_timeout": max(1, round(options.connect_timeout_s)),
            "options": f"-c statement_timeout={round(options.statement_timeout_s * 1000)}",
            "application_name": "text-recognizer",
        }
    return args


def _stat(stats: dict[str, Any], key: str, kind: type) -> Any:
    value = stats.get(key)
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _image_format(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return (img.format or "bin").lower()
    except Exception:
        return "bin"


@dataclass(eq=False)
class _Write:
    """A write waiting for its group's commit; ``error`` is set when it failed."""

    work: Callable[[Session], None]
    done: bool = False
    error: Exception | None = None


class Store:
    """Predictions and feedback over one SQLAlchemy engine. Thread-safe: one session per call.

    Opening it brings the schema to the latest migration where that is safe
    (:func:`text_recognizer.serving.migrate.ensure_schema`), or raises
    :class:`~text_recognizer.serving.migrate.SchemaBehind`.
    """

    def __init__(self, url: str | None = None, options: StoreOptions | None = None) -> None:
        from text_recognizer.serving.migrate import ensure_schema

        self.url = url or default_db_url()
        options = options or StoreOptions.from_settings(ServingSettings.from_env())
        setup = make_engine(self.url, options, create=True)
        try:
            ensure_schema(setup, auto_upgrade=options.auto_upgrade)
        finally:
            setup.dispose()
        self.engine = make_engine(self.url, options, create=False)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._failed_at: float | None = None
        self._writes = threading.Condition()  # guards _queued and _committing (group commit)
        self._queued: list[_Write] = []
        self._committing = False

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _guard(self, action: str, write: bool = True) -> Iterator[None]:
        """Database errors -> :class:`StoreUnavailable`; bugs and :class:`UnknownPrediction` pass through.

        Remembers when an operation last failed, for :meth:`ping`; only a successful write clears that (a read
        can succeed while writes fail, on a full disk).
        """
        try:
            yield
            if write:
                self._failed_at = None
        except SQLAlchemyError as e:
            self._failed_at = time.monotonic()
            log.error("monitoring store %s: cannot %s: %s", self._where(), action, e)
            cause = type(getattr(e, "orig", None) or e).__name__
            raise StoreUnavailable(
                f"the monitoring store cannot {action} right now ({cause}); nothing was recorded, retry later"
            ) from e

    def _where(self) -> str:
        return self.engine.url.render_as_string()

    def ping(self) -> bool:
        """True when the store can commit a write now (a no-op update of the schema version row) and no
        request's write failed in the last :data:`FAILURE_MEMORY_S` seconds (a full disk lets the probe
        through but not a new image)."""
        from text_recognizer.serving.migrate import VERSION_TABLE

        failed_at = self._failed_at
        if failed_at is not None and time.monotonic() - failed_at < FAILURE_MEMORY_S:
            return False
        try:
            with self._sessions.begin() as session:
                session.execute(update(VERSION_TABLE).values(version_num=VERSION_TABLE.c.version_num))
            return True
        except SQLAlchemyError as e:
            log.error("monitoring store %s is unavailable: %s", self._where(), e)
            return False

    def record_prediction(self, image: bytes, pred: Prediction, latency_ms: float, source: str) -> str:
        """Store the image (once per content) and the prediction in one transaction (shared with the
        predictions recorded at the same time: :meth:`_commit_together`); returns the new id.

        Raises:
            StoreUnavailable: the database cannot be written; nothing was stored.
        """
        sha = hashlib.sha256(image).hexdigest()
        stats = pred.image_stats
        pid = uuid.uuid4().hex

        def write(session: Session) -> None:
            self._store_image(session, sha, image)
            session.add(
                PredictionRow(
                    id=pid,
                    image_sha256=sha,
                    width=_stat(stats, "width", int) or 0,
                    height=_stat(stats, "height", int) or 0,
                    brightness=_stat(stats, "brightness", float),
                    polarity=_stat(stats, "polarity", str),
                    text=pred.text,
                    confidence=float(pred.confidence),
                    n_lines=len(pred.lines),
                    latency_ms=float(latency_ms),
                    model_version=pred.model_version,
                    source=source,
                    line_boxes=json.dumps([list(line.box) for line in pred.lines]),
                )
            )

        self._commit_together("record a prediction", write)
        return pid

    def _commit_together(self, action: str, work: Callable[[Session], None]) -> None:
        """Run ``work`` in a committed transaction, with the other writes queued at the same time: a caller
        that finds no commit running commits everything queued (its own write included); the others wait
        until theirs is committed or has failed.

        Raises:
            StoreUnavailable: this write could not be committed (nothing of it was stored).
        """
        mine = _Write(work)
        with self._writes:
            self._queued.append(mine)
            while not mine.done and self._committing:
                self._writes.wait()
            if not mine.done:
                self._committing = True
                batch, self._queued = self._queued, []
        if not mine.done:
            try:
                self._commit_batch(action, batch)
            finally:
                with self._writes:
                    self._committing = False
                    self._writes.notify_all()
        if mine.error is not None:
            raise mine.error

    def _commit_batch(self, action: str, batch: list[_Write]) -> None:
        """Commit ``batch`` in one transaction; if that fails, each write alone. Marks every write done."""
        try:
            with self._guard(action), self._sessions.begin() as session:
                for w in batch:
                    w.work(session)
        except Exception as e:
            if len(batch) > 1:  # one bad write must not fail the others: each alone
                for w in batch:
                    self._commit_batch(action, [w])
                return
            batch[0].error = e
        for w in batch:
            w.done = True

    def _store_image(self, session: Session, sha: str, image: bytes) -> None:
        """Insert the image unless its hash is there; a concurrent insert of the same bytes is fine."""
        if session.get(ImageRow, sha) is not None:
            return
        values = {"sha256": sha, "data": image, "format": _image_format(image)}
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            session.execute(postgresql.insert(ImageRow).values(values).on_conflict_do_nothing())
        elif dialect == "sqlite":
            session.execute(sqlite.insert(ImageRow).values(values).on_conflict_do_nothing())
        else:
            session.execute(insert(ImageRow).values(values))

    def prediction_text(self, prediction_id: str) -> str:
        """The text predicted for ``prediction_id``.

        Raises:
            UnknownPrediction: no prediction has this id.
            StoreUnavailable: the database cannot be read.
        """
        with self._guard("read a prediction", write=False), self._sessions() as session:
            row = session.get(PredictionRow, prediction_id)
            if row is None:
                raise UnknownPrediction(f"no prediction with id {prediction_id!r}")
            return row.text

    def record_feedback(self, prediction_id: str, corrected_text: str | None, reason: str) -> int:
        """Store a flag; returns its id.

        Raises:
            UnknownPrediction: no prediction has this id.
            StoreUnavailable: the database cannot be read or written; nothing was stored.
        """
        with self._guard("record feedback"), self._sessions.begin() as session:
            if session.get(PredictionRow, prediction_id) is None:
                raise UnknownPrediction(f"no prediction with id {prediction_id!r}")
            row = FeedbackRow(prediction_id=prediction_id, corrected_text=corrected_text, reason=reason)
            session.add(row)
            session.flush()
            return row.id

    def delete_older_than(self, cutoff: datetime) -> tuple[int, int, int]:
        """Delete the predictions made before ``cutoff`` (aware), their feedback, and the images no remaining
        prediction uses, in one transaction. Returns ``(predictions, feedback, images)`` deleted.

        Raises:
            StoreUnavailable: the database cannot be written; nothing was deleted.
        """
        old = select(PredictionRow.id).where(PredictionRow.created_at < cutoff)
        with self._guard("delete old records"), self._sessions.begin() as session:
            feedback = session.execute(delete(FeedbackRow).where(FeedbackRow.prediction_id.in_(old)))
            predictions = session.execute(delete(PredictionRow).where(PredictionRow.created_at < cutoff))
            used = select(PredictionRow.image_sha256)
            images = session.execute(delete(ImageRow).where(ImageRow.sha256.not_in(used)))
        return predictions.rowcount, feedback.rowcount, images.rowcount  # type: ignore[attr-defined]

    def predictions(self, since: datetime | None = None) -> list[PredictionRecord]:
        """All predictions (oldest first), or those since ``since``, with whether each was flagged."""
        with self._guard("read predictions"), Session(self.engine) as session:
            flagged = set(session.scalars(select(FeedbackRow.prediction_id).distinct()))
            query = select(PredictionRow).order_by(PredictionRow.created_at)
            if since is not None:
                query = query.where(PredictionRow.created_at >= since)
            return [
                PredictionRecord(
                    id=r.id,
                    created_at=_aware(r.created_at),
                    width=r.width,
                    height=r.height,
                    brightness=r.brightness,
                    polarity=r.polarity,
                    confidence=r.confidence,
                    latency_ms=r.latency_ms,
                    model_version=r.model_version,
                    source=r.source,
                    flagged=r.id in flagged,
                )
                for r in session.scalars(query)
            ]

    def corrections(self, since: datetime | None = None) -> list[CorrectionRecord]:
        """The latest non-empty correction of each prediction (made since ``since``), oldest first."""
        with self._guard("read corrections"), Session(self.engine) as session:
            query = (
                select(FeedbackRow, PredictionRow)
                .join(PredictionRow, FeedbackRow.prediction_id == PredictionRow.id)
                .where(FeedbackRow.corrected_text.is_not(None))
                .order_by(PredictionRow.created_at, FeedbackRow.id)
            )
            if since is not None:
                query = query.where(PredictionRow.created_at >= since)
            latest = {
                pred.id: CorrectionRecord(
                    pred.id, _aware(pred.created_at), pred.model_version, pred.text, fb.corrected_text or ""
                )
                for fb, pred in session.execute(query)
                if (fb.corrected_text or "").strip()
            }
        return list(latest.values())

    def corrected_samples(self) -> Iterator[CorrectedSample]:
        """The latest non-empty correction of each flagged prediction, oldest prediction first."""
        with self._guard("read corrections"), Session(self.engine) as session:
            query = (
                select(FeedbackRow, PredictionRow, ImageRow)
                .join(PredictionRow, FeedbackRow.prediction_id == PredictionRow.id)
                .join(ImageRow, PredictionRow.image_sha256 == ImageRow.sha256)
                .where(FeedbackRow.corrected_text.is_not(None))
                .order_by(PredictionRow.created_at, FeedbackRow.id)
            )
            latest: dict[str, CorrectedSample] = {}
            for fb, pred, img in session.execute(query):
                if fb.corrected_text is None or not fb.corrected_text.strip():
                    continue
                latest[pred.id] = CorrectedSample(
                    pred.id,
                    img.sha256,
                    img.data,
                    img.format,
                    fb.corrected_text,
                    pred.n_lines,
                    pred.text,
                    pred.model_version,
                    _boxes(pred.line_boxes),
                )
        yield from latest.values()


def _aware(t: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored is UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _boxes(stored: str | None) -> tuple[Box, ...] | None:
    """The ``line_boxes`` column back as boxes."""
    if stored is None:
        return None
    return tuple((int(a), int(b), int(c), int(d)) for a, b, c, d in json.loads(stored))

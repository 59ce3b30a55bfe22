"""The monitoring store: every prediction and every flag, in SQLite by default or any SQLAlchemy database.

Tables:

* ``images``: the uploaded files by sha256 of their bytes (stored once however often they are sent).
* ``predictions``: time, image hash and stats (width, height, brightness, polarity), text, confidence,
  latency, model version, source (``json``, ``url``, ``upload``, ``ui``, ``lambda``).
* ``feedback``: a flag on a prediction with the user's corrected text and a reason.

Each write is one transaction, committed before the API answers. SQLite runs in WAL mode with
``synchronous=FULL``, so a crash (even ``kill -9`` or power loss) loses no acknowledged write.
"""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    event,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from text_recognizer.inference.types import Prediction
from text_recognizer.paths import home
from text_recognizer.serving.errors import UnknownPrediction

log = logging.getLogger(__name__)
DB_FILE = "monitoring.db"


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
class CorrectedSample:
    """A flagged prediction with its correction: the image file and the right text."""

    prediction_id: str
    image_sha256: str
    image: bytes
    format: str
    text: str
    n_lines: int


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (default :func:`default_db_url`); SQLite gets WAL and full sync per connect."""
    url = url or default_db_url()
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


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


class Store:
    """Predictions and feedback over one SQLAlchemy engine. Thread-safe: one session per call."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_db_url()
        self.engine = make_engine(self.url)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            log.exception("monitoring store %s is unavailable", self.engine.url.render_as_string())
            return False

    def record_prediction(self, image: bytes, pred: Prediction, latency_ms: float, source: str) -> str:
        """Store the image (once per content) and the prediction; returns the new prediction id."""
        sha = hashlib.sha256(image).hexdigest()
        stats = pred.image_stats
        pid = uuid.uuid4().hex
        self._store_image(sha, image)
        with self._sessions.begin() as session:
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
                )
            )
        return pid

    def _store_image(self, sha: str, image: bytes) -> None:
        """Insert the image unless its hash is there (a concurrent insert of the same bytes is fine)."""
        with self._sessions() as session:
            if session.get(ImageRow, sha) is not None:
                return
        try:
            with self._sessions.begin() as session:
                session.add(ImageRow(sha256=sha, data=image, format=_image_format(image)))
        except IntegrityError:
            log.debug("image %s stored by a concurrent request", sha)

    def prediction_text(self, prediction_id: str) -> str:
        """The text predicted for ``prediction_id``.

        Raises:
            UnknownPrediction: no prediction has this id.
        """
        with self._sessions() as session:
            row = session.get(PredictionRow, prediction_id)
            if row is None:
                raise UnknownPrediction(f"no prediction with id {prediction_id!r}")
            return row.text

    def record_feedback(self, prediction_id: str, corrected_text: str | None, reason: str) -> int:
        """Store a flag; returns its id.

        Raises:
            UnknownPrediction: no prediction has this id.
        """
        with self._sessions.begin() as session:
            if session.get(PredictionRow, prediction_id) is None:
                raise UnknownPrediction(f"no prediction with id {prediction_id!r}")
            row = FeedbackRow(prediction_id=prediction_id, corrected_text=corrected_text, reason=reason)
            session.add(row)
            session.flush()
            return row.id

    def predictions(self, since: datetime | None = None) -> list[PredictionRecord]:
        """All predictions (oldest first), or those since ``since``, with whether each was flagged."""
        with Session(self.engine) as session:
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

    def corrected_samples(self) -> Iterator[CorrectedSample]:
        """The latest non-empty correction of each flagged prediction, oldest prediction first."""
        with Session(self.engine) as session:
            query = (
                select(FeedbackRow, PredictionRow, ImageRow)
                .join(PredictionRow, FeedbackRow.prediction_id == PredictionRow.id)
                .join(ImageRow, PredictionRow.image_sha256 == ImageRow.sha256)
                .where(FeedbackRow.corrected_text.is_not(None))
                .order_by(PredictionRow.created_at, FeedbackRow.id)
            )
            latest: dict[str, CorrectedSample] = {}
            for fb, pred, img in session.execute(query).tuples():
                if fb.corrected_text is None or not fb.corrected_text.strip():
                    continue
                latest[pred.id] = CorrectedSample(
                    pred.id, img.sha256, img.data, img.format, fb.corrected_text, pred.n_lines
                )
        yield from latest.values()


def _aware(t: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored is UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)

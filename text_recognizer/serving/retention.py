"""Retention: predictions, their feedback and images older than ``retention_days`` are deleted from the store,
and old files from the page's upload cache.

The server applies it at start and then every :data:`INTERVAL_S` (each process: deleting is idempotent);
``text-recognizer db prune --days N`` applies it once. Off by default (everything is kept); corrections are
training data, so export them (``text-recognizer feedback export``) before they age out.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from text_recognizer.serving.store import Store

log = logging.getLogger(__name__)

#: how often a running server applies the retention
INTERVAL_S = 3600.0


@dataclass(frozen=True)
class Pruned:
    """What one pass deleted: store rows and upload-cache files."""

    predictions: int
    feedback: int
    images: int
    cache_files: int


def prune_folder(folder: Path, cutoff: datetime) -> int:
    """Delete the files under ``folder`` last modified before ``cutoff``, then the folders left empty.
    Returns the number of files deleted; files that vanish meanwhile are skipped."""
    if not folder.is_dir():
        return 0
    limit = cutoff.timestamp()
    deleted = 0
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        try:
            if path.is_symlink() or path.is_file():
                if path.lstat().st_mtime < limit:
                    path.unlink()
                    deleted += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        except OSError:
            continue
    return deleted


def apply_retention(store: Store, days: float, cache: Path | None = None) -> Pruned:
    """Delete what is older than ``days`` from ``store`` and, when given, the upload ``cache`` folder.

    Raises:
        StoreUnavailable: the store cannot be written.
    """
    cutoff = datetime.now(UTC) - timedelta(days=days)
    predictions, feedback, images = store.delete_older_than(cutoff)
    files = prune_folder(cache, cutoff) if cache is not None else 0
    pruned = Pruned(predictions, feedback, images, files)
    if any((predictions, feedback, images, files)):
        log.info("retention (%g days): deleted %s", days, pruned)
    return pruned


class RetentionTask:
    """A daemon thread applying :func:`apply_retention` now and every ``interval_s`` until :meth:`stop`."""

    def __init__(self, store: Store, days: float, cache: Path | None, interval_s: float = INTERVAL_S) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(store, days, cache, interval_s), name="retention", daemon=True
        )
        self._thread.start()

    def _run(self, store: Store, days: float, cache: Path | None, interval_s: float) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                apply_retention(store, days, cache)
            except Exception as e:  # a store down now is retried at the next pass
                log.error("retention pass failed: %s", e)
            self._stop.wait(max(0.0, interval_s - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

"""Predictions in worker processes, so that a per-request deadline really stops the work.

A thread cannot be stopped from outside: a prediction that passes its deadline in a thread keeps its CPU until
it ends. :class:`WorkerPool` runs each prediction in one of ``size`` worker processes instead (``spawn``ed: no
state forked from the threaded server), each of which builds its predictor once. A prediction that passes its
deadline gets :class:`DeadlineExceeded` and its worker is killed (``SIGKILL``: the CPU is free at once) and
replaced in the background; the other workers go on serving. Until the replacement has loaded the model
(a second or two; longer on a loaded machine) the pool serves with one worker fewer.

Per prediction the cost is one pipe round trip: the image file goes to the worker, the pickled
:class:`~text_recognizer.inference.types.Prediction` comes back.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Protocol

from text_recognizer.images import ImageError
from text_recognizer.inference.types import Prediction

log = logging.getLogger(__name__)

#: longest a new worker may take to build its predictor (import ONNX Runtime, load the model)
START_TIMEOUT_S = 120.0
#: wait before trying again to start a worker whose start failed
RESTART_BACKOFF_S = 1.0


class _Predictor(Protocol):
    @property
    def model_version(self) -> str: ...

    def predict(self, image: bytes) -> Prediction: ...


#: a picklable callable that builds the predictor inside a worker (module-level function or partial of one)
PredictorFactory = Callable[[], _Predictor]


class DeadlineExceeded(Exception):
    """The prediction passed its deadline; its worker was killed."""


class WorkerCrashed(Exception):
    """The worker died during the prediction (killed from outside, out of memory, a crash)."""


class WorkerError(Exception):
    """The predictor raised an unexpected error in the worker (type and message in the text)."""


def _worker_main(conn: Connection, factory: PredictorFactory) -> None:
    """A worker's loop: build the predictor, then answer one prediction per image received."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops its workers
    try:
        predictor = factory()
    except Exception as e:
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", predictor.model_version))
    while True:
        try:
            image = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the server closed the pipe
        try:
            conn.send(("ok", predictor.predict(image)))
        except ImageError as e:
            conn.send(("image_error", str(e)))
        except Exception as e:
            conn.send(("error", f"{type(e).__name__}: {e}"))


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Worker:
    process: BaseProcess
    conn: Connection

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def stop(self) -> None:
        self.conn.close()
        self.process.kill()
        self.process.join(timeout=10)


class WorkerPool:
    """``size`` worker processes, each with its own predictor from ``factory``. Thread-safe: a caller takes
    an idle worker (waiting until its deadline for one), so at most ``size`` predictions run at once.

    Raises (from the constructor):
        RuntimeError: a worker could not build its predictor (its error in the message).
    """

    def __init__(self, factory: PredictorFactory, size: int) -> None:
        self._factory = factory
        self._context = multiprocessing.get_context("spawn")
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        self._closed = False
        started = [self._spawn() for _ in range(size)]  # all start together, then each is awaited
        versions = [self._await_ready(w) for w in started]
        self.model_version = versions[0]
        for w in started:
            self._idle.put(w)

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main, args=(child, self._factory), name="predict-worker", daemon=True
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        with self._lock:
            self._workers.add(worker)
        return worker

    def _await_ready(self, worker: _Worker) -> str:
        try:
            if not worker.conn.poll(START_TIMEOUT_S):
                raise RuntimeError(f"a prediction worker did not start within {START_TIMEOUT_S:g} s")
            kind, value = worker.conn.recv()
        except (EOFError, OSError) as e:
            self._discard(worker)
            raise RuntimeError(f"a prediction worker exited while starting ({e!r})") from e
        except RuntimeError:
            self._discard(worker)
            raise
        if kind != "ready":
            self._discard(worker)
            raise RuntimeError(f"a prediction worker could not load the model: {value}")
        return str(value)

    def _discard(self, worker: _Worker) -> None:
        worker.stop()
        with self._lock:
            self._workers.discard(worker)

    def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` now (its CPU is free at once); reap it and start its replacement in the background
        (idle once it has loaded), so the caller answers without waiting for either."""
        worker.process.kill()
        threading.Thread(
            target=self._restart, args=(worker,), name="predict-worker-restart", daemon=True
        ).start()

    def _restart(self, dead: _Worker) -> None:
        self._discard(dead)
        while not self._closed:
            try:
                worker = self._spawn()
                self._await_ready(worker)
            except Exception as e:
                if self._closed:
                    return  # closed while the replacement started
                log.error("could not restart a prediction worker: %s", e)
                time.sleep(RESTART_BACKOFF_S)
                continue
            if self._closed:
                self._discard(worker)
            else:
                self._idle.put(worker)
            return

    def pids(self) -> list[int]:
        """Process ids of the live workers (idle or busy)."""
        with self._lock:
            return sorted(w.pid for w in self._workers)

    def idle(self) -> int:
        """Workers started and free now (a killed worker's replacement counts once it has loaded)."""
        return self._idle.qsize()

    def predict(self, image: bytes, deadline: float | None = None) -> Prediction:
        """One prediction in a worker, over by ``deadline`` (``time.monotonic()``; None: no deadline).

        Raises:
            DeadlineExceeded: no worker was free, or the prediction did not end, by the deadline; a busy
                worker is killed and replaced.
            WorkerCrashed: the worker died during the prediction (it is replaced).
            ImageError: the predictor refused the image.
            WorkerError: any other error of the predictor.
        """

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        try:
            worker = self._idle.get(timeout=remaining())
        except queue.Empty as e:
            raise DeadlineExceeded("no prediction worker became free before the deadline") from e
        try:
            worker.conn.send_bytes(image)
            if not worker.conn.poll(remaining()):
                self._replace(worker)
                raise DeadlineExceeded(f"prediction worker {worker.pid} passed the deadline and was killed")
            kind, value = worker.conn.recv()
        except (EOFError, OSError) as e:
            self._replace(worker)
            raise WorkerCrashed(f"prediction worker {worker.pid} died ({e!r})") from e
        self._idle.put(worker)
        if kind == "ok":
            assert isinstance(value, Prediction)
            return value
        if kind == "image_error":
            raise ImageError(value)
        raise WorkerError(value)

    def close(self) -> None:
        """Stop every worker (idle or busy)."""
        self._closed = True
        with self._lock:
            workers = list(self._workers)
            self._workers.clear()
        for w in workers:
            w.stop()


def worker_threads(size: int) -> int:
    """ONNX Runtime threads per worker: the cores shared out, so ``size`` workers do not oversubscribe."""
    return max(1, (os.cpu_count() or 1) // size)

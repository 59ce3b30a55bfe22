"""Reliability test helpers (importable as ``reliability_helpers``): the real server in a subprocess."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from hypothesis import HealthCheck, settings
from PIL import Image


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(model: Path, db: Path | str, workdir: Path, timeout: float = 120.0) -> Server:
    """``text-recognizer serve`` (API only) in a subprocess on a free loopback port, once /health answers.
    ``db``: a SQLite file, or any SQLAlchemy URL."""
    port = free_port()
    url = f"sqlite:///{db}" if isinstance(db, Path) else db
    cmd = [sys.executable, "-m", "text_recognizer.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--model", str(model), "--db", url, "--no-ui"]
    env = {**os.environ, "TEXT_RECOGNIZER_HOME": str(workdir)}
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise TimeoutError(f"server did not become healthy in {timeout} s:\n{log.read_text()[-2000:]}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)


FEEDBACK_PER_PREDICTION = 3


def line_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.where(rng.random((48, 320)) < 0.08, 20, 235).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Acknowledged:
    """What the server answered 200 to: prediction ids (with their feedback tokens) and
    (feedback id, prediction id, text)."""

    predictions: dict[str, str] = field(default_factory=dict)
    feedback: list[tuple[int, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def write_until_stopped(
    url: str, k: int, acked: Acknowledged, stop: threading.Event, feedback_url: str | None = None
) -> None:
    """One client: predict on ``url``, then flag the prediction a few times with a unique text on
    ``feedback_url`` (default: the same server); record each 200. Returns when a server is gone."""
    images = [base64.b64encode(line_png(1000 * k + i)).decode() for i in range(4)]
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        httpx.Client(base_url=feedback_url or url, timeout=30) as flagger,
    ):
        i = 0
        while not stop.is_set():
            try:
                r = client.post("/predict", json={"image": images[i % len(images)]})
                if r.status_code != 200:
                    continue
                pid, token = r.json()["prediction_id"], r.json()["feedback_token"]
                with acked.lock:
                    acked.predictions[pid] = token
                for j in range(FEEDBACK_PER_PREDICTION):
                    text = f"client {k} prediction {i} correction {j}"
                    flag = {"prediction_id": pid, "correct_text": text, "feedback_token": token}
                    r = flagger.post("/feedback", json=flag)
                    if r.status_code == 200:
                        with acked.lock:
                            acked.feedback.append((r.json()["feedback_id"], pid, text))
            except httpx.HTTPError:
                return  # the server is gone
            i += 1


def fuzz_settings(examples: int) -> settings:
    """Deterministic hypothesis settings for the fuzz tests: no deadline, no example database."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )


def text_line_png(width: int = 160, height: int = 40, text: str = "hello") -> bytes:
    """A line of dark text on light paper, as PNG."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("L", (width, height), "white")
    ImageDraw.Draw(img).text((6, height // 3), text, fill="black")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def lost_writes(db_url: str, acked: Acknowledged) -> tuple[set[str], list[tuple[int, str, str]]]:
    """The acknowledged predictions and feedback rows that the store at ``db_url`` does not hold."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        predictions = set(conn.execute(text("SELECT id FROM predictions")).scalars())
        rows = conn.execute(text("SELECT id, prediction_id, corrected_text FROM feedback"))
        feedback = {fid: (pid, corrected) for fid, pid, corrected in rows}
    engine.dispose()
    lost = [(fid, pid, t) for fid, pid, t in acked.feedback if feedback.get(fid) != (pid, t)]
    return set(acked.predictions) - predictions, lost


#: an image carrying this text (in a PNG text chunk) makes :class:`SpinningPredictor` spin forever
SPIN_MARKER = "spin-until-killed"


class SpinningPredictor:
    """The real predictor, except that an image carrying :data:`SPIN_MARKER` keeps a CPU busy forever."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def model_version(self) -> str:
        return str(self.inner.model_version)

    def predict(self, image: bytes) -> Any:
        if SPIN_MARKER.encode() in image:
            while True:
                pass
        return self.inner.predict(image)


def spinning_predictor(model: Path) -> SpinningPredictor:
    """A worker's predictor factory (module level, so a spawned process can unpickle it)."""
    from text_recognizer.inference.predictor import load_predictor

    return SpinningPredictor(load_predictor(model, threads=1))


def spinning_png() -> bytes:
    """A valid line image whose PNG text chunk carries :data:`SPIN_MARKER`."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("comment", SPIN_MARKER)
    buf = io.BytesIO()
    Image.open(io.BytesIO(text_line_png())).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from ``/proc`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loopback_host(behaviour: Callable[[socket.socket], None]) -> tuple[str, socket.socket]:
    """A loopback HTTP host that reads each request and then runs ``behaviour`` on its connection (a thread
    each). Returns the URL of its ``/image.png`` and its listening socket (close it to stop the host)."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                behaviour(conn)
            except OSError:
                pass  # the client hung up: what its deadline is for

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/image.png", server

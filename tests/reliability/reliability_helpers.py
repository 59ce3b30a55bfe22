"""Reliability test helpers (importable as ``reliability_helpers``): the real server in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from hypothesis import HealthCheck, settings


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


def start_server(model: Path, db: Path, workdir: Path, timeout: float = 120.0) -> Server:
    """``text-recognizer serve`` (API only) in a subprocess on a free loopback port, once /health answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "text_recognizer.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--model", str(model), "--db", f"sqlite:///{db}", "--no-ui"]
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


def fuzz_settings(examples: int) -> settings:
    """Deterministic hypothesis settings for the fuzz tests: no deadline, no example database."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )


def line_png(width: int = 160, height: int = 40, text: str = "hello") -> bytes:
    """A line of dark text on light paper, as PNG."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("L", (width, height), "white")
    ImageDraw.Draw(img).text((6, height // 3), text, fill="black")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()

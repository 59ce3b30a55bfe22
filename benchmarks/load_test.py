"""The API under load on loopback: ``text-recognizer serve`` in a subprocess, N concurrent clients.

    python -m benchmarks.load_test --data DIR [--model ARTIFACT] [--clients 8 --clients 32] [--duration 60]

Each client posts ``POST /predict`` (base64 JSON) in a loop, cycling through the images of ``DIR``, for the
given duration; requests/s, latency percentiles, errors and the server's resident memory before and after.
The server runs as ``make run`` starts it (API and web page, SQLite monitoring store, here in a temporary
folder); the clients run in this process on the same machine, sharing its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.scoring import percentiles
from text_recognizer.data.folder import read_labels


@dataclass
class LoadResult:
    clients: int
    seconds: float
    ok: int
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    rss_before_mb: float = float("nan")
    rss_after_mb: float = float("nan")

    def summary(self) -> dict[str, object]:
        p50, p95, p99 = percentiles(self.latencies)
        return {
            "clients": self.clients,
            "seconds": self.seconds,
            "requests": self.ok + sum(self.errors.values()),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "rps": self.ok / self.seconds,
            "p50_ms": p50 * 1000,
            "p95_ms": p95 * 1000,
            "p99_ms": p99 * 1000,
            "rss_before_mb": self.rss_before_mb,
            "rss_after_mb": self.rss_after_mb,
            "latencies_ms": [x * 1000 for x in self.latencies],
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (Linux ``/proc``; NaN elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@contextmanager
def running_server(model: Path | None, workdir: Path, timeout: float = 180.0) -> Iterator[tuple[str, int]]:
    """Run ``text-recognizer serve`` on a free loopback port; yield (base URL, pid) once it is healthy."""
    port = free_port()
    cmd = [sys.executable, "-m", "text_recognizer.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--db", f"sqlite:///{workdir / 'monitoring.db'}"] + (["--model", str(model)] if model else [])
    env = {**os.environ, "TEXT_RECOGNIZER_HOME": str(workdir), "GRADIO_ANALYTICS_ENABLED": "False"}
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not answer /health in {timeout:.0f} s; see {log_path}")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _load(url: str, bodies: Sequence[bytes], clients: int, duration: float) -> LoadResult:
    result = LoadResult(clients=clients, seconds=duration, ok=0)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        deadline = time.perf_counter() + duration

        async def one_client(k: int) -> None:
            i = k
            while time.perf_counter() < deadline:
                body = bodies[i % len(bodies)]
                i += clients
                t = time.perf_counter()
                try:
                    response = await client.post("/predict", content=body, headers=headers)
                except httpx.HTTPError as e:
                    result.errors[type(e).__name__] += 1
                    continue
                if response.status_code == 200:
                    result.ok += 1
                    result.latencies.append(time.perf_counter() - t)
                else:
                    result.errors[f"HTTP {response.status_code}"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client(k) for k in range(clients)))
        result.seconds = time.perf_counter() - started
    return result


def load_test(
    model: Path | None, images: Sequence[Path], client_counts: Sequence[int], duration: float
) -> dict[str, Any]:
    """Start a server, warm it up, then run each client count for ``duration`` seconds in turn."""
    bodies = [json.dumps({"image": base64.b64encode(p.read_bytes()).decode()}).encode() for p in images]
    runs = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp,
        running_server(model, Path(tmp)) as (url, pid),
    ):
        started_rss = rss_mb(pid)
        for body in bodies[:3]:
            httpx.post(
                f"{url}/predict", content=body, headers={"content-type": "application/json"}, timeout=120
            )
        for clients in client_counts:
            before = rss_mb(pid)
            print(f"load: {clients} clients for {duration:g} s", flush=True)
            result = asyncio.run(_load(url, bodies, clients, duration))
            result.rss_before_mb, result.rss_after_mb = before, rss_mb(pid)
            runs.append(result.summary())
    return {"server_rss_started_mb": started_rss, "n_images": len(bodies), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="a labels.jsonl folder of images to send")
    parser.add_argument(
        "--model", type=Path, default=None, help="artifact folder (default: the shipped model)"
    )
    parser.add_argument("--clients", type=int, action="append", help="concurrent clients (default 8 and 32)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds for each client count")
    args = parser.parse_args()
    images = [e.image for e in read_labels(args.data)]
    out = load_test(args.model, images, args.clients or [8, 32], float(args.duration))
    for run in out["runs"]:
        run.pop("latencies_ms")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

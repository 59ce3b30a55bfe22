"""Soak: the server under a mixed hostile and legitimate load on loopback (``make soak``).

    python -m benchmarks.soak [--seconds 120] [--clients 64] [--model ARTIFACT]

Starts ``text-recognizer serve`` (as ``make run`` does, with a temporary store; ``image_url`` may reach
loopback so that it can be sent to a local trickling host), measures the unloaded throughput of legitimate
requests (line images, ``--unloaded-seconds``), then runs ``--clients`` concurrent clients for ``--seconds``:
half send legitimate line images, the rest, in turn: ``image_url`` on a host that trickles its answer a byte
at a time, tall images (2 x 20,000,000 pixels), malformed bodies (bad JSON, bad base64, not an image) and
oversize bodies. Prints goodput (legitimate 200s per second against the unloaded figure), latency
percentiles of legitimate answers and of refusals (503), and counts by kind and status. Targets (issue 15):
goodput at least 80 % of unloaded, refusals' p99 under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.load_test import running_server
from benchmarks.scoring import percentiles

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reliability"))

from reliability_helpers import loopback_host

#: the server's request-body limit (ServingSettings.max_request_bytes): one byte more is oversize
OVERSIZE_BYTES = 16 * 2**20 + 1
TALL = (2, 20_000_000)
HOSTILE = ("slow_url", "tall", "malformed", "oversize")


def line_png(text: str) -> bytes:
    img = Image.new("L", (240, 40), "white")
    ImageDraw.Draw(img).text((6, 12), text, fill="black")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def tall_png() -> bytes:
    a = np.full((TALL[1], TALL[0]), 255, np.uint8)
    a[::50] = 0
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def trickle(conn: socket.socket) -> None:
    """A slow image host's answer: headers and body a byte every 50 ms."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    for byte in head + b"x" * 100000:
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


@dataclass
class Record:
    """Per kind of request: statuses and latencies (seconds) by status."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)

    def add(self, status: str, seconds: float) -> None:
        self.statuses[status] += 1
        self.latencies.setdefault(status, []).append(seconds)


def requests(slow_url: str) -> dict[str, list[tuple[str, bytes, str]]]:
    """Per kind: (path, body, content type) to cycle through."""
    lines = [line_png(f"soak line {i}") for i in range(8)]
    return {
        "legit": [("/predict", b, "image/png") for b in lines],
        "slow_url": [("/predict", f'{{"image_url": "{slow_url}"}}'.encode(), "application/json")],
        "tall": [("/predict", tall_png(), "image/png")],
        "malformed": [
            ("/predict", b'{"image": ', "application/json"),
            ("/predict", b'{"image": "not base64 !!"}', "application/json"),
            ("/predict", b"GIF89a this is no image", "image/gif"),
        ],
        "oversize": [("/predict", b"\0" * OVERSIZE_BYTES, "image/png")],
    }


class Connection:
    """One keep-alive HTTP/1.1 connection of a client, raw asyncio streams: a load generator as light as
    ``wrk``, so that on a 2-core machine the clients do not take the CPU the server is measured on (httpx's
    client took more CPU than the server and its workers together)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def post(self, request: bytes) -> str:
        """Send one whole request; its status code, or the name of what went wrong."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(request)  # not drained first: the server may answer before it reads the body
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(h.lower().split(": ", 1) for h in lines[1:] if ": " in h)
            await self.reader.readexactly(int(headers.get("content-length", "0")))
            if headers.get("connection", "") == "close":
                await self.close()
            return lines[0].split(" ", 2)[1]
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            await self.close()
            return type(e).__name__


def http_request(path: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def run_clients(
    url: str, kinds: list[str], bodies: dict[str, list[tuple[str, bytes, str]]], seconds: float
) -> tuple[dict[str, Record], float]:
    """``len(kinds)`` clients, each with its own connection, sending its kind's requests in turn for
    ``seconds``; per kind, the statuses and latencies."""
    records = {k: Record() for k in set(kinds)}
    host, port = url.removeprefix("http://").rsplit(":", 1)
    prepared = {k: [http_request(*b) for b in v] for k, v in bodies.items()}
    deadline = time.perf_counter() + seconds

    async def one(k: int, kind: str) -> None:
        conn = Connection(host, int(port))
        i = k
        while time.perf_counter() < deadline:
            request = prepared[kind][i % len(prepared[kind])]
            i += 1
            t = time.perf_counter()
            try:
                status = await asyncio.wait_for(conn.post(request), timeout=60)
            except TimeoutError:
                status = "timeout"
                await conn.close()
            records[kind].add(status, time.perf_counter() - t)
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(k, kind) for k, kind in enumerate(kinds)))
    return records, time.perf_counter() - started


def ms(values: list[float]) -> str:
    p50, p95, p99 = percentiles(values)
    return f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (n={len(values)})"


def soak(model: Path | None, seconds: float, clients: int, unloaded_seconds: float) -> None:
    os.environ["TEXT_RECOGNIZER_ALLOW_PRIVATE_URLS"] = "1"  # the trickling host is on loopback
    slow_url, host = loopback_host(trickle)
    bodies = requests(slow_url)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, running_server(model, Path(tmp)) as (url, _):
        asyncio.run(run_clients(url, ["legit"] * 2, bodies, 3.0))  # warm-up
        # unloaded: as many clients as the server predicts at once (max_concurrency, default 2)
        base, base_s = asyncio.run(run_clients(url, ["legit"] * 2, bodies, unloaded_seconds))
        unloaded = base["legit"].statuses["200"] / base_s
        print(
            f"unloaded: {unloaded:.2f} legitimate requests/s ({ms(base['legit'].latencies.get('200', []))})"
        )
        legit = clients // 2
        kinds = ["legit"] * legit + [HOSTILE[i % len(HOSTILE)] for i in range(clients - legit)]
        print(f"soak: {clients} clients ({legit} legitimate) for {seconds:g} s", flush=True)
        records, took = asyncio.run(run_clients(url, kinds, bodies, seconds))
    host.close()
    good = records["legit"].statuses["200"] / took
    print(
        f"goodput: {good:.2f} legitimate 200/s = {100 * good / unloaded:.0f} % of unloaded (target >= 80 %)"
    )
    print(f"legitimate 200: {ms(records['legit'].latencies.get('200', []))}")
    refusals = [x for r in records.values() for x in r.latencies.get("503", [])]
    print(f"refusals 503 (all kinds): {ms(refusals)} (target p99 < 1 s)")
    for kind, r in sorted(records.items()):
        print(f"  {kind:10} " + ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items())))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="artifact folder (default: the shipped model)"
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the mixed load")
    parser.add_argument("--unloaded-seconds", type=float, default=20.0, help="length of the unloaded measure")
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args()
    soak(args.model, args.seconds, args.clients, args.unloaded_seconds)


if __name__ == "__main__":
    main()

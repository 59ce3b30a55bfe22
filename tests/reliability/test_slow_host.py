"""A slow image host costs one request at most its download deadline (headers and body together)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from text_recognizer.serving.errors import DownloadFailed
from text_recognizer.serving.fetch import FetchLimits, fetch_image

from reliability_helpers import loopback_host

DEADLINE_S = 1.0
SLACK_S = 0.5


def trickle_headers(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(200):
        conn.sendall(b"X-Slow: a\r\n")
        time.sleep(0.05)


def trickle_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(2000):
        conn.sendall(b"x")
        time.sleep(0.01)


def trickle_redirects(conn: socket.socket) -> None:
    """Each answer is a quick redirect to itself after most of a second: the deadline spans redirects."""
    time.sleep(0.4)
    port = conn.getsockname()[1]
    conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/a\r\n\r\n".encode())


def silent(conn: socket.socket) -> None:
    time.sleep(5)


@pytest.fixture
def slow_host() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """``slow_host(behaviour)`` -> the URL of a loopback server that runs ``behaviour`` on each connection."""
    servers: list[socket.socket] = []

    def start(behaviour: Callable[[socket.socket], None]) -> str:
        url, server = loopback_host(behaviour)
        servers.append(server)
        return url

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize("behaviour", [trickle_headers, trickle_body, trickle_redirects, silent])
def test_a_slow_host_costs_at_most_the_deadline(
    slow_host: Callable[[Callable[[socket.socket], None]], str], behaviour: Callable[[socket.socket], None]
) -> None:
    url = slow_host(behaviour)
    limits = FetchLimits(max_bytes=10**6, timeout_s=DEADLINE_S, allow_private=True, max_redirects=10)
    started = time.monotonic()
    with pytest.raises(DownloadFailed, match="took longer than"):
        fetch_image(url, limits)
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE_S + SLACK_S, f"{behaviour.__name__}: {elapsed:.2f} s"

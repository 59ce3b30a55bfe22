"""Half-sent requests (slowloris): a connection that never completes its request head is closed, and a body
that does not arrive in time is refused with 408."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from text_recognizer.serving import http_protocol
from text_recognizer.serving.api import BodyLimitMiddleware
from text_recognizer.serving.http_protocol import HeaderTimeoutH11Protocol


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(http_protocol, "HEADER_TIMEOUT_S", 0.5)
    app = FastAPI()

    @app.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    app.add_middleware(BodyLimitMiddleware, max_bytes=2**20, timeout_s=0.5)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", http=HeaderTimeoutH11Protocol)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield srv.servers[0].sockets[0].getsockname()[1]
    srv.should_exit = True
    thread.join(timeout=10)


def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``sock`` (reads EOF), at most ``limit``."""
    started = time.monotonic()
    sock.settimeout(limit)
    while True:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            return limit


@pytest.mark.parametrize("sent", [b"", b"GET /ok HTTP/1.1\r\n", b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A: "])
def test_an_incomplete_request_head_is_closed(server: int, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(sent)
        assert _closed_after(sock, limit=5.0) < 3.0


def test_complete_requests_and_keep_alive_still_work(server: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server}") as client:
        assert client.get("/ok").json() == {"ok": True}
        time.sleep(0.2)
        assert client.get("/ok").json() == {"ok": True}  # same connection, inside the head timeout
    with socket.create_connection(("127.0.0.1", server)) as sock:  # after a response, the timer restarts
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert b"200 OK" in sock.recv(4096)
        assert _closed_after(sock, limit=5.0) < 3.0


def test_a_body_that_does_not_arrive_in_time_gets_408(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        sock.settimeout(5)
        started = time.monotonic()
        answer = sock.recv(4096)
        while b"}" not in answer:  # the body may come in a second packet
            answer += sock.recv(4096) or b"}"
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"request_timeout" in answer
        assert time.monotonic() - started < 3.0
    with httpx.Client(base_url=f"http://127.0.0.1:{server}") as client:  # a whole body in time: read
        assert client.post("/echo", content=b"y" * 5000).json() == {"bytes": 5000}

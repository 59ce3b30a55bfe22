"""Helpers shared by the serving tests: images drawn here and a scripted predictor double."""

from __future__ import annotations

import base64
import contextlib
import io
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from sqlalchemy import event

from text_recognizer.images import load_gray
from text_recognizer.inference.types import LineResult, Prediction, WordResult
from text_recognizer.serving.store import Store


def png_bytes(
    width: int = 160, height: int = 40, text: str = "hello", mode: str = "L", fmt: str = "PNG"
) -> bytes:
    """A line of dark text on light paper, encoded as ``fmt``."""
    img = Image.new(mode, (width, height), "white")
    ImageDraw.Draw(img).text((6, height // 3), text, fill="black")
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class ScriptedPredictor:
    """Test double: decodes like the real predictor, answers ``WxH`` after ``delay`` s or raises ``error``."""

    model_version = "scripted-1"

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.delay = delay
        self.error = error
        self.calls = 0
        self.release = threading.Event()

    def predict(self, image: bytes) -> Prediction:
        self.calls += 1
        gray = load_gray(image)
        if self.delay:
            self.release.wait(self.delay)
        if self.error is not None:
            raise self.error
        h, w = gray.shape
        text = f"{w}x{h}"
        return Prediction(
            text=text,
            confidence=0.75,
            lines=[LineResult(text, 0.75, (0, 0, w, h), [WordResult(text, 0.75, (0, 0, w, h))])],
            model_version=self.model_version,
            seconds=self.delay,
            image_stats={"width": w, "height": h, "brightness": float(gray.mean()), "polarity": "dark_ink"},
        )


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class _Handler(BaseHTTPRequestHandler):
    """Routes of the local test server; ``server.png`` is the image it serves."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}) and "Transfer-Encoding" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        png: bytes = self.server.png  # type: ignore[attr-defined]
        if self.path == "/ok.png":
            self._send(200, png, {"Content-Type": "image/png"})
        elif self.path == "/big":  # declares its size: refused before reading
            self._send(200, b"", {"Content-Length": str(100 * 2**20)})
        elif self.path == "/big-chunked":  # no size declared: refused while streaming
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\0" * 65536
            try:
                for _ in range(400):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        elif self.path == "/redirect-ok":
            self._send(302, headers={"Location": "/ok.png"})
        elif self.path == "/redirect-metadata":
            self._send(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif self.path == "/redirect-ftp":
            self._send(302, headers={"Location": "ftp://example.com/x.png"})
        elif self.path == "/loop":
            self._send(302, headers={"Location": "/loop"})
        elif self.path == "/slow":
            time.sleep(3)
            self._send(200, png)
        elif self.path == "/text":
            self._send(200, b"not an image", {"Content-Type": "text/plain"})
        else:
            self._send(404, b"no")


@contextlib.contextmanager
def image_server(png: bytes) -> Iterator[str]:
    """A local HTTP server on a free 127.0.0.1 port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.png = png  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def bomb_png(width: int = 10_000, height: int = 10_000) -> bytes:
    """A real decompression bomb: a valid 8-bit gray PNG of ``width x height`` zero pixels, tiny on disk."""
    row = b"\0" * (width + 1)  # filter byte + pixels
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        if not wait_for(lambda: server.started, timeout=30):
            raise RuntimeError("uvicorn did not start")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def noise_png(seed: int, width: int = 320, height: int = 96) -> bytes:
    """A PNG of random gray pixels (incompressible: about ``width * height`` bytes on disk)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def fill_disk(store: Store) -> None:
    """Make a SQLite store's file as if its disk were full: from now on no connection may grow the file
    (SQLite's own ``SQLITE_FULL`` path, through ``PRAGMA max_page_count``)."""

    def cap(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()

    event.listen(store.engine, "connect", cap)

"""Access control and admission: the optional API key, feedback tokens, the page's origin check, and
overload shedding before a body is read.

* **API key** (``TEXT_RECOGNIZER_API_KEY``, off when empty): ``/predict``, ``/predict/upload`` and
  ``/feedback`` need ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the page asks for it at a login
  form (Gradio's auth, any user name). Compared in constant time.
* **Feedback tokens**: each prediction answer carries ``feedback_token`` = HMAC-SHA256(secret, prediction id);
  ``POST /feedback`` needs it, so only a client that received a prediction can correct it. The secret is
  ``TEXT_RECOGNIZER_SECRET``, else a random one kept in ``feedback_secret`` next to the SQLite database (so
  tokens survive restarts and are shared by every worker), else (an in-memory or remote database) in
  ``<TEXT_RECOGNIZER_HOME>``.
* **Origin check**: a state-changing ``POST`` to the page (``/gradio_api/...``) whose ``Origin`` header names
  another host than the request's ``Host`` is refused with 403 (cross-site request forgery).
* **Shedding**: at most ``max_concurrency + max_queue`` requests to ``/predict*`` are admitted at a time;
  the next ones get ``503 overloaded`` before a byte of their body is read.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from text_recognizer.serving.errors import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: API routes that need the key when one is set (the page has its own login).
KEYED_PATHS = ("/predict", "/predict/upload", "/feedback")
#: Routes shed under overload (they decode images).
PREDICT_PATHS = ("/predict", "/predict/upload")
SECRET_FILE = "feedback_secret"


def keys_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented key with the configured one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def page_auth(api_key: str | None) -> Callable[[str, str], bool] | None:
    """The page's login check when a key is set (any user name, the key as password); None when not."""
    if not api_key:
        return None
    key = api_key
    return lambda _user, password: keys_match(password, key)


def presented_key(headers: MutableMapping[str, str] | dict[str, str]) -> str | None:
    """The key in ``Authorization: Bearer <key>`` or ``X-API-Key`` (header names lower-case)."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or None


class FeedbackSigner:
    """Tokens that prove a client received a prediction id: HMAC-SHA256 hex of the id."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def token(self, prediction_id: str) -> str:
        return hmac.new(self._secret, prediction_id.encode(), hashlib.sha256).hexdigest()

    def check(self, prediction_id: str, token: str | None) -> bool:
        # compare bytes: compare_digest refuses str with non-ASCII characters, which a client may send
        expected = self.token(prediction_id).encode()
        return token is not None and hmac.compare_digest(expected, token.encode("utf-8", "replace"))


def secret_path(db_url: str) -> Path:
    """Where the random secret is kept: beside the SQLite database file, else in the data home."""
    from sqlalchemy.engine import make_url

    from text_recognizer.paths import home

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).expanduser().parent / SECRET_FILE
    return home() / SECRET_FILE


def load_secret(configured: str | None, db_url: str) -> bytes:
    """``configured`` if given, else the persisted random secret (created once, mode 0600, race-free)."""
    if configured:
        return configured.encode()
    path = secret_path(db_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes().strip()
        if data:
            return data
        path.unlink(missing_ok=True)  # an empty file left by a crash between create and write
        return load_secret(configured, db_url)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
        f.flush()
        os.fsync(f.fileno())
    return path.read_bytes().strip()


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _refuse(send: Send, status: int, code: str, message: str, extra: list[Any] | None = None) -> None:
    import json

    body = json.dumps(error_body(code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    """401 for :data:`KEYED_PATHS` without the right key (the body is not read)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keyed = scope["type"] == "http" and scope["path"].rstrip("/") in KEYED_PATHS
        if keyed and not keys_match(presented_key(_headers(scope)), self.api_key):
            await _refuse(
                send,
                401,
                "unauthorized",
                "this server needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        await self.app(scope, receive, send)


class OriginCheckMiddleware:
    """403 for a ``POST`` under ``/gradio_api/`` whose ``Origin`` is present and not this server's host."""

    def __init__(self, app: ASGIApp, prefix: str = "/gradio_api/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith(self.prefix):
            headers = _headers(scope)
            origin = headers.get("origin")
            if origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
                await _refuse(send, 403, "cross_origin", "requests to this page must come from the page")
                return
        await self.app(scope, receive, send)


class AdmissionMiddleware:
    """Admit at most ``limit`` requests to :data:`PREDICT_PATHS` at once; answer the rest 503 at once,
    before their body is read or decoded (one event loop per process: a plain counter is exact)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") not in PREDICT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await _refuse(
                send, 503, "overloaded", "the server is busy; retry in a moment", [(b"retry-after", b"1")]
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

"""The JSON API: app factory, lifespan (the model is loaded once), thin routes, and the server runner.

Routes: ``POST /predict`` (JSON, or the raw image file with an ``image/*`` content type),
``POST /predict/upload`` (multipart file), ``POST /feedback``, ``GET /health``, ``GET /metrics``
(Prometheus), ``/docs`` (Swagger UI served from the ``swagger-ui-bundle`` package: works offline). With
``ui`` on, the Gradio page is mounted at ``/``; unknown paths and wrong methods still get the API's
``{"error": {...}}`` body and a 405 where the path is an API route. Every request writes one JSON log line
(:mod:`text_recognizer.serving.request_log`) and carries an ``x-request-id`` header back.

Concurrency: routes are async; blocking work (download, decoding, store writes) runs in Starlette's thread
pool and predictions on the bounded pool of :class:`~text_recognizer.serving.core.RecognitionService` (worker
processes by default, so a prediction past its deadline is stopped). For
more than one process, ``run_server(workers=N)`` starts N uvicorn workers, each with its own model and store,
and one Prometheus multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``) so ``/metrics`` counts them all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Mount
from starlette.staticfiles import StaticFiles

from text_recognizer import __version__
from text_recognizer.paths import default_artifact
from text_recognizer.serving.core import PredictorLike, RecognitionService, is_raw_image, request_error
from text_recognizer.serving.errors import (
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServingError,
    UnsupportedMediaType,
    error_body,
)
from text_recognizer.serving.metrics import Metrics
from text_recognizer.serving.request_log import log_request
from text_recognizer.serving.retention import RetentionTask
from text_recognizer.serving.schemas import (
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    PredictRequest,
    PredictResponse,
)
from text_recognizer.serving.security import (
    AdmissionMiddleware,
    ApiKeyMiddleware,
    OriginCheckMiddleware,
    page_auth,
)
from text_recognizer.serving.settings import ServingSettings
from text_recognizer.serving.store import Store, StoreOptions

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Bad base64, bad JSON or a bad URL",
        401: "An API key is set on this server and the request has not got it",
        403: "image_url points at a refused address, or a feedback token that does not match",
        408: "The request body did not arrive in time",
        413: "Request, image or download too large, or too many pixels",
        422: "Invalid request, not an image, or the download failed",
        503: "Busy, the prediction timed out, or the monitoring store is unavailable; retry later",
    }.items()
}
_HTTP_CODES = {
    404: "not_found",
    408: "request_timeout",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _send_json(send: Send, status: int, body: bytes | memoryview) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": bytes(body)})


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 (by Content-Length or while streaming), and bodies
    not wholly received within ``timeout_s`` of the request head with 408: a client that sends its body a
    byte at a time holds a predict slot (:class:`~.security.AdmissionMiddleware` admits before the body is
    read) for at most that long."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"the request body is larger than {self.max_bytes} bytes")

        async def answer(error: ServingError) -> None:
            await _send_json(send, error.status, JSONResponse(error.body()).body)

        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await answer(too_large)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        received = 0
        body_done = started = False
        refusal: ServingError | None = None

        async def limited_receive() -> Message:
            nonlocal received, body_done, refusal
            if body_done:  # after the body: waiting for a disconnect has no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                refusal = RequestTimeout(f"the request body did not arrive within {self.timeout_s:g} s")
                raise StarletteHTTPException(408, refusal.message) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_bytes:
                    refusal = too_large
                    raise StarletteHTTPException(413, too_large.message)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:  # whatever the app answers after a refusal, the client gets the refusal
                if not started and message["type"] == "http.response.start":
                    started = True
                    await answer(refusal)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
            if not started:
                started = True
                await answer(refusal)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class MetricsMiddleware:
    """Count requests and time them by route template (unknown paths are one label, so no label explosion),
    and write each request's log line. The request id is the client's ``x-request-id`` when it is a short
    token, else a new one; the response carries it back."""

    def __init__(self, app: ASGIApp, metrics: Metrics, model_version: Callable[[], str | None]) -> None:
        self.app = app
        self.metrics = metrics
        self.model_version = model_version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            label = "ui" if isinstance(route, Mount) else getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], label, str(status["code"])).inc()
            seconds = time.perf_counter() - started
            self.metrics.latency.labels(label).observe(seconds)
            version = self.model_version()
            log_request(request_id, scope["method"], label, status["code"], seconds * 1000, version)


class ApiErrorsMiddleware:
    """The API's error format for 404 and 405 even where the mounted page (which matches every path)
    answers: a wrong method on an API route is a 405 before the page sees it, and the page's own 404/405
    bodies are rewritten to ``{"error": {"code", "message"}}``."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    def _allowed(self, scope: Scope) -> set[str] | None:
        """Methods of the API route the path names, when the request's method is not one of them."""
        allowed: set[str] = set()
        for r in self.routes:
            if isinstance(r, Mount):
                continue
            match, _ = r.matches(scope)
            if match == Match.FULL:
                return None
            if match == Match.PARTIAL:
                allowed |= getattr(r, "methods", None) or set()
        return allowed or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed = self._allowed(scope)
        if allowed is not None:
            methods = ", ".join(sorted(allowed))
            error = MethodNotAllowed(f"{scope['path']} takes {methods}, not {scope['method']}")
            response = JSONResponse(error.body(), error.status, {"allow": methods})
            await response(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def formatting_send(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] in (404, 405):
                held = message
                return
            if held is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            await _send_error_body(send, held, b"".join(chunks), scope)

        await self.app(scope, receive, formatting_send)


async def _send_error_body(send: Send, start: Message, body: bytes, scope: Scope) -> None:
    """Send a held 404/405 response, in the API's error format unless it already is."""
    try:
        ours = isinstance(json.loads(body).get("error"), dict)
    except (ValueError, AttributeError):
        ours = False
    if not ours:
        error: ServingError = (
            NotFound(f"no route {scope['path']}; the API is described at /docs")
            if start["status"] == 404
            else MethodNotAllowed(f"{scope['method']} is not allowed on {scope['path']}")
        )
        body = json.dumps(error.body()).encode()
        keep = [(k, v) for k, v in start.get("headers", []) if k.lower() == b"allow"]
        start = {**start, "headers": [*keep, (b"content-type", b"application/json")]}
        start["headers"].append((b"content-length", str(len(body)).encode()))
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    def reply(status: int, code: str, message: str) -> JSONResponse:
        metrics.errors.labels(code).inc()
        return JSONResponse(error_body(code, message), status_code=status)

    @app.exception_handler(ServingError)
    async def serving_error(_: Request, exc: ServingError) -> JSONResponse:
        return reply(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = request_error(exc.errors())
        return reply(error.status, error.code, error.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        response = reply(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return reply(500, "internal_error", "internal server error; it has been logged")


def _service(request: Request) -> RecognitionService:
    service: RecognitionService = request.app.state.service
    return service


def private_paths(settings: ServingSettings) -> list[Path]:
    """Folders no web route may serve from: the data home and the SQLite database's folder."""
    from sqlalchemy.engine import make_url

    from text_recognizer.paths import home
    from text_recognizer.serving.store import default_db_url

    database = make_url(settings.db or default_db_url()).database
    return [home()] + ([Path(database).parent] if database and database != ":memory:" else [])


def open_predictor(settings: ServingSettings) -> PredictorLike:
    """The staged model of ``settings``: in worker processes (``predict_in_processes``) or in this one."""
    from text_recognizer.inference.predictor import load_predictor

    if not settings.predict_in_processes:
        return load_predictor(settings.model)
    from text_recognizer.serving.workers import WorkerPool, worker_threads

    size = settings.max_concurrency
    return WorkerPool(partial(load_predictor, settings.model, threads=worker_threads(size)), size)


def _start_retention(settings: ServingSettings, store: Store) -> RetentionTask | None:
    """The hourly retention pass (first one now) when ``retention_days`` is set; the page's cache with it."""
    if settings.retention_days is None:
        return None
    cache = None
    if settings.ui:
        from text_recognizer.serving.ui import upload_folder

        cache = upload_folder()
    return RetentionTask(store, settings.retention_days, cache)


def create_app(settings: ServingSettings | None = None, predictor: PredictorLike | None = None) -> FastAPI:
    """Build the app. The model (``predictor``, or the artifact in ``settings.model``) and the store are
    opened in the lifespan, once per process, and closed at shutdown."""
    settings = settings or ServingSettings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = predictor if predictor is not None else await run_in_threadpool(open_predictor, settings)
        store = await run_in_threadpool(Store, settings.db, StoreOptions.from_settings(settings))
        app.state.service = RecognitionService(model, store, settings, observer=metrics)
        log.info("serving model %s, store %s", model.model_version, store.engine.url.render_as_string())
        retention = _start_retention(settings, store)
        try:
            yield
        finally:
            if retention is not None:
                retention.stop()
            app.state.service.close()

    app = FastAPI(
        title="text-recognizer",
        version=__version__,
        description="Handwritten text recognition: send an image, get the text and its confidence.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    _install_error_handlers(app, metrics)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={**ERROR_RESPONSES, 415: {"model": ErrorResponse, "description": "Unsupported media type"}},
        tags=["predict"],
        openapi_extra={"requestBody": PREDICT_BODY},
    )
    async def predict(request: Request) -> PredictResponse:
        """Read the handwriting in an image given as base64 / data URL (`image`) or by URL (`image_url`) in
        JSON, or sent as the raw body with its `image/*` content type."""
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        raw = await request.body()
        if is_raw_image(content_type):
            response = await run_in_threadpool(_service(request).predict_bytes, raw, "upload")
        elif content_type in ("", "application/json"):
            try:
                body = PredictRequest.model_validate_json(raw or b"null")
            except ValidationError as e:
                raise request_error(e.errors()) from e
            response = await run_in_threadpool(_service(request).predict_request, body, "json")
        else:
            raise UnsupportedMediaType(
                f"POST /predict takes application/json or an image/* body, not {content_type}"
            )
        return response  # counted in /metrics by the service (RecognitionService.observer)

    @app.post("/predict/upload", response_model=PredictResponse, responses=ERROR_RESPONSES, tags=["predict"])
    async def predict_upload(
        request: Request, file: UploadFile = File(description="The image file.")
    ) -> PredictResponse:
        """Read the handwriting in an image sent as a multipart file upload (field `file`)."""
        data = await file.read(settings.max_image_bytes + 1)
        return await run_in_threadpool(_service(request).predict_bytes, data, "upload")

    feedback_responses = {
        **ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No prediction has this prediction_id"},
    }

    @app.post("/feedback", response_model=FeedbackResponse, responses=feedback_responses, tags=["feedback"])
    async def feedback(body: FeedbackRequest, request: Request) -> FeedbackResponse:
        """Flag a prediction as wrong, with the correct text when known (422 `unchanged_correction` if it
        is the predicted text itself)."""
        return await run_in_threadpool(_service(request).feedback, body)

    @app.get(
        "/health",
        response_model=HealthResponse,
        responses={503: {"model": HealthResponse, "description": "The monitoring store is unavailable"}},
        tags=["ops"],
    )
    async def health(request: Request) -> JSONResponse:
        """200 when the model is loaded and the store can be written; 503 with ``store: unavailable`` not."""
        report = await run_in_threadpool(_service(request).health)
        return JSONResponse(report.model_dump(), status_code=200 if report.store == "ok" else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    _install_offline_docs(app)

    if settings.ui:
        from text_recognizer.serving.ui import LocalBackend, mount_ui

        mount_ui(
            app,
            LocalBackend(lambda: app.state.service),
            max_file_size=settings.max_image_bytes,
            blocked_paths=private_paths(settings),
            auth=page_auth(settings.api_key),
        )
    else:

        @app.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse("/docs")

    app.add_middleware(ApiErrorsMiddleware, routes=app.router.routes)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_request_bytes, timeout_s=settings.body_timeout_s
    )
    _install_guards(app, settings)
    app.add_middleware(MetricsMiddleware, metrics=metrics, model_version=lambda: _model_version(app))
    return app


def _install_guards(app: FastAPI, settings: ServingSettings) -> None:
    """Outermost first: the API key, then shedding (both before the body is read), then the origin check."""
    app.add_middleware(OriginCheckMiddleware)
    app.add_middleware(AdmissionMiddleware, limit=settings.max_concurrency + settings.max_queue)
    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)


def _model_version(app: FastAPI) -> str | None:
    service: RecognitionService | None = getattr(app.state, "service", None)
    return service.model_version if service is not None else None


#: The request body of POST /predict in the OpenAPI document: JSON, or the raw image file.
PREDICT_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": PredictRequest.model_json_schema()},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _install_offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI with its JavaScript and CSS served from the installed ``swagger-ui-bundle``."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs-assets/favicon-32x32.png",
        )


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings come from ``TEXT_RECOGNIZER_*`` variables."""
    return create_app(ServingSettings.from_env())


def run_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    model: Path | None = None,
    db: str | None = None,
    ui: bool | None = None,
    workers: int = 1,
) -> None:
    """Serve until interrupted. Settings go through the environment so every worker process sees them;
    an option left None keeps the ``TEXT_RECOGNIZER_*`` variable (or the default).

    Raises:
        FileNotFoundError: no staged model where the settings point, with how to get one.
    """
    import uvicorn

    settings = ServingSettings.from_env(model=model, db=db, ui=ui)
    check_model(settings.model or default_artifact())
    os.environ.update(settings.to_env())
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    own_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="text-recognizer-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    page = "" if settings.ui else " (no web page)"
    print(f"text-recognizer: http://{host}:{port}/{page} (API docs at /docs), {workers} worker(s)")
    try:
        uvicorn.run(
            "text_recognizer.serving.api:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            timeout_graceful_shutdown=10,
            # half-sent requests: a complete request head within HEADER_TIMEOUT_S (uvicorn has no such
            # timeout), of at most 16 KiB; idle keep-alive connections closed after 5 s
            http="text_recognizer.serving.http_protocol:HeaderTimeoutH11Protocol",
            h11_max_incomplete_event_size=16 * 1024,
            timeout_keep_alive=5,
        )
    finally:
        if own_dir is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(own_dir, ignore_errors=True)


def check_model(path: Path) -> None:
    """Fail early, in one line, when ``path`` is not a staged model folder."""
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no staged model at {path} (no manifest.json): pass --model or set TEXT_RECOGNIZER_MODEL to an "
            "artifact folder, or make one with `text-recognizer stage CHECKPOINT`"
        )

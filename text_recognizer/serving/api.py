"""The JSON API: app factory, lifespan (the model is loaded once), thin routes, and the server runner.

Routes: ``POST /predict`` (JSON), ``POST /predict/upload`` (multipart file), ``POST /feedback``,
``GET /health``, ``GET /metrics`` (Prometheus), ``/docs`` (OpenAPI). With ``ui`` on, the Gradio page is
mounted at ``/``.

Concurrency: routes are async; blocking work (download, decoding, store writes) runs in Starlette's thread
pool and predictions on the bounded pool of :class:`~text_recognizer.serving.core.RecognitionService`. For
more than one process, ``run_server(workers=N)`` starts N uvicorn workers, each with its own model and store.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from text_recognizer import __version__
from text_recognizer.serving.core import PredictorLike, RecognitionService, request_error
from text_recognizer.serving.errors import PayloadTooLarge, ServingError, error_body
from text_recognizer.serving.metrics import Metrics
from text_recognizer.serving.schemas import (
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    PredictRequest,
    PredictResponse,
)
from text_recognizer.serving.settings import ServingSettings
from text_recognizer.serving.store import Store

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
        403: "image_url points at a refused address",
        413: "Request, image or download too large, or too many pixels",
        422: "Invalid request, not an image, or the download failed",
        503: "Busy or the prediction timed out; retry later",
    }.items()
}
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _send_json(send: Send, status: int, body: bytes | memoryview) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": bytes(body)})


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = PayloadTooLarge(f"the request body is larger than {self.max_bytes} bytes")
        payload = JSONResponse(error.body()).body
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _send_json(send, error.status, payload)
            return
        received = 0
        exceeded = started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise StarletteHTTPException(413, error.message)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app answers after the limit, the client gets the 413
                if not started and message["type"] == "http.response.start":
                    started = True
                    await _send_json(send, error.status, payload)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
            if not started:
                started = True
                await _send_json(send, error.status, payload)


class MetricsMiddleware:
    """Count requests and time them by route template (unknown paths are one label, so no label explosion)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
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
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)


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


def create_app(settings: ServingSettings | None = None, predictor: PredictorLike | None = None) -> FastAPI:
    """Build the app. The model (``predictor``, or the artifact in ``settings.model``) and the store are
    opened in the lifespan, once per process, and closed at shutdown."""
    settings = settings or ServingSettings.from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if predictor is None:
            from text_recognizer.inference.predictor import load_predictor

            model: PredictorLike = await run_in_threadpool(load_predictor, settings.model)
        else:
            model = predictor
        store = await run_in_threadpool(Store, settings.db)
        app.state.service = RecognitionService(model, store, settings)
        log.info("serving model %s, store %s", model.model_version, store.engine.url.render_as_string())
        try:
            yield
        finally:
            app.state.service.close()

    app = FastAPI(
        title="text-recognizer",
        version=__version__,
        description="Handwritten text recognition: send an image, get the text and its confidence.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    _install_error_handlers(app, metrics)

    @app.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES, tags=["predict"])
    async def predict(body: PredictRequest, request: Request) -> PredictResponse:
        """Read the handwriting in an image given as base64 / data URL (`image`) or by URL (`image_url`)."""
        response = await run_in_threadpool(_service(request).predict_request, body, "json")
        metrics.confidence.observe(response.confidence)
        return response

    @app.post("/predict/upload", response_model=PredictResponse, responses=ERROR_RESPONSES, tags=["predict"])
    async def predict_upload(
        request: Request, file: UploadFile = File(description="The image file.")
    ) -> PredictResponse:
        """Read the handwriting in an image sent as a multipart file upload (field `file`)."""
        data = await file.read(settings.max_image_bytes + 1)
        response = await run_in_threadpool(_service(request).predict_bytes, data, "upload")
        metrics.confidence.observe(response.confidence)
        return response

    feedback_responses = {
        **ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No prediction has this prediction_id"},
    }

    @app.post("/feedback", response_model=FeedbackResponse, responses=feedback_responses, tags=["feedback"])
    async def feedback(body: FeedbackRequest, request: Request) -> FeedbackResponse:
        """Flag a prediction as wrong, with the correct text when known (422 `unchanged_correction` if it
        is the predicted text itself)."""
        response = await run_in_threadpool(_service(request).feedback, body)
        metrics.feedback.labels(body.reason).inc()
        return response

    @app.get("/health", response_model=HealthResponse, tags=["ops"])
    async def health(request: Request) -> HealthResponse:
        return await run_in_threadpool(_service(request).health)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if settings.ui:
        from text_recognizer.serving.ui import LocalBackend, mount_ui

        mount_ui(
            app,
            LocalBackend(lambda: app.state.service),
            max_file_size=settings.max_image_bytes,
            blocked_paths=private_paths(settings),
        )
    else:

        @app.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse("/docs")

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings come from ``TEXT_RECOGNIZER_*`` variables."""
    return create_app(ServingSettings.from_env())


def run_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    model: Path | None = None,
    db: str | None = None,
    ui: bool = True,
    workers: int = 1,
) -> None:
    """Serve until interrupted. Settings go through the environment so every worker process sees them."""
    import uvicorn

    settings = ServingSettings.from_env(model=model, db=db, ui=ui)
    os.environ.update(settings.to_env())
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    print(f"text-recognizer: http://{host}:{port}/ (API docs at /docs), {workers} worker(s)")
    uvicorn.run(
        "text_recognizer.serving.api:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        timeout_graceful_shutdown=10,
    )

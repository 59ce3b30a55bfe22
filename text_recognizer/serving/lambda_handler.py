"""AWS Lambda adapter over :mod:`text_recognizer.serving.core` (no FastAPI in the request path).

Accepts Lambda Function URL and API Gateway HTTP API (payload 2.0) events and API Gateway REST API (payload
1.0) events, with plain or base64-encoded bodies, and direct invokes (``aws lambda invoke``, SDKs, Step
Functions) whose event is the request itself: ``{"image": ...}`` or ``{"image_url": ...}`` returns the
``/predict`` response object, ``{"pred": ..., "confidence": ..., ...}``, or ``{"statusCode": 4xx, "error":
{...}}``, with the same validation and URL rules as the API. HTTP routes (matched on the end of the path, so
a stage prefix is fine):

* ``POST .../predict``: JSON ``{"image"}`` or ``{"image_url"}``; or the raw image file with an ``image/*`` or
  ``application/octet-stream`` content type.
* ``POST .../predict/upload``: multipart form with a ``file`` field.
* ``POST .../feedback``, ``GET .../health``.

The model is loaded once per container, on the first request (not at import, so the init phase stays short).
Each event writes one JSON log line (:mod:`text_recognizer.serving.request_log`) with the Lambda request id.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import email.parser
import email.policy
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from text_recognizer.serving.core import RecognitionService, build_service, is_raw_image, request_error
from text_recognizer.serving.errors import (
    BadBase64,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServingError,
    Unauthorized,
    UnsupportedMediaType,
    error_body,
)
from text_recognizer.serving.request_log import log_request
from text_recognizer.serving.schemas import FeedbackRequest, PredictRequest
from text_recognizer.serving.security import keys_match, presented_key
from text_recognizer.serving.settings import ServingSettings

log = logging.getLogger(__name__)

#: Most parts read from a multipart body, as the HTTP API (Starlette's ``max_parts``).
MAX_PARTS = 1000

_service: RecognitionService | None = None
_service_lock = threading.Lock()


def get_service() -> RecognitionService:
    """The container's service, built from ``TEXT_RECOGNIZER_*`` variables on first use."""
    global _service
    with _service_lock:
        if _service is None:
            _service = build_service(ServingSettings.from_env())
        return _service


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def parse_event(event: Any, max_bytes: int) -> HttpRequest:
    """A Function URL / HTTP API (2.0) or REST API (1.0) event -> method, path, lower-case headers, body."""
    if not isinstance(event, dict):
        raise InvalidRequest("the Lambda event is not a JSON object")
    context = event.get("requestContext") or {}
    http = context.get("http") if isinstance(context, dict) else None
    if isinstance(http, dict) and "method" in http:
        method, path = str(http["method"]), str(event.get("rawPath") or http.get("path") or "/")
    elif "httpMethod" in event:
        method, path = str(event["httpMethod"]), str(event.get("path") or "/")
    else:
        raise InvalidRequest("not an API Gateway or Lambda Function URL event")
    given = event.get("headers") or {}
    if not isinstance(given, dict):
        raise InvalidRequest("the event's headers are not a JSON object")
    headers = {str(k).lower(): str(v) for k, v in given.items()}
    raw = event.get("body") or ""
    if not isinstance(raw, str):
        raise InvalidRequest("the event body is not a string")
    if len(raw) > max_bytes * 4 // 3 + 4:
        raise PayloadTooLarge(f"the request body is larger than {max_bytes} bytes")
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as e:
            raise BadBase64(f"the event body is marked base64 but is not ({e})") from e
    else:
        try:
            body = raw.encode("utf-8")
        except UnicodeEncodeError as e:  # a lone surrogate: no byte string has it
            raise InvalidRequest(f"the event body is not valid text ({e.reason} at {e.start})") from e
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"the request body is larger than {max_bytes} bytes")
    return HttpRequest(method.upper(), path.rstrip("/") or "/", headers, body)


M = TypeVar("M", bound=BaseModel)


def _json_model(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body or b"null")
    except ValidationError as e:
        raise request_error(e.errors()) from e


def multipart_file(request: HttpRequest, field: str = "file") -> bytes:
    """The bytes of form field ``field`` of a ``multipart/form-data`` body."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("send the image as multipart/form-data with a 'file' field")
    content_type = request.headers.get("content-type", "")
    boundary = email.message.Message()
    boundary["content-type"] = content_type
    marker = boundary.get_param("boundary")
    if not isinstance(marker, str) or not marker:
        raise InvalidRequest("the multipart content type has no boundary")
    # counted before parsing, like the HTTP API's part limit; a nested multipart (a part with its own
    # boundary) is refused, the parser would recurse once per level
    parts = request.body.count(b"--" + marker.encode("latin-1", "replace")) - 1
    if parts > MAX_PARTS:
        raise PayloadTooLarge(f"the multipart body has {parts} parts; the limit is {MAX_PARTS}")
    if b"boundary=" in request.body.lower():
        raise InvalidRequest("nested multipart bodies are not accepted; send the file as one part")
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    except (RecursionError, ValueError) as e:
        raise InvalidRequest(f"the multipart body cannot be parsed ({type(e).__name__})") from e
    if message.is_multipart():
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == field:
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    return payload
    raise InvalidRequest(f"the multipart body has no '{field}' field")


#: route -> its method; the longest suffix first, so ``/predict/upload`` is not read as ``/predict``.
ROUTES = {"/predict/upload": "POST", "/predict": "POST", "/feedback": "POST", "/health": "GET"}


def route_template(path: str) -> str | None:
    """The route a path ends with, or None."""
    return next((r for r in ROUTES if path == r or path.endswith(r)), None)


def route(request: HttpRequest, service: RecognitionService) -> tuple[int, dict[str, Any]]:
    """Dispatch one request; returns ``(status, JSON body)``."""
    name = route_template(request.path)
    if name is None:
        raise NotFound(f"no route {request.path}; try POST /predict")
    if request.method != ROUTES[name]:
        raise MethodNotAllowed(f"{name} takes {ROUTES[name]}, not {request.method}")
    if name == "/health":
        report = service.health()
        return (200 if report.store == "ok" else 503), report.model_dump()
    key = service.settings.api_key
    if key and not keys_match(presented_key(request.headers), key):
        raise Unauthorized("this API needs a key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    if name == "/feedback":
        return 200, service.feedback(_json_model(FeedbackRequest, request.body)).model_dump()
    if name == "/predict/upload":
        return 200, service.predict_bytes(multipart_file(request), "lambda").model_dump()
    if is_raw_image(request.content_type):
        return 200, service.predict_bytes(request.body, "lambda").model_dump()
    if request.content_type == "multipart/form-data":
        return 200, service.predict_bytes(multipart_file(request), "lambda").model_dump()
    if request.content_type not in ("", "application/json"):
        raise UnsupportedMediaType(f"POST /predict takes application/json, not {request.content_type}")
    return 200, service.predict_request(_json_model(PredictRequest, request.body), "lambda").model_dump()


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def is_direct_invoke(event: Any) -> bool:
    """An event that is a ``/predict`` JSON request itself, not an HTTP event wrapping one."""
    return (
        isinstance(event, dict)
        and ("image" in event or "image_url" in event)
        and not {"requestContext", "httpMethod", "routeKey"} & event.keys()
    )


def direct_predict(event: dict[str, Any], service: RecognitionService) -> dict[str, Any]:
    """A direct invoke's event, validated as a :class:`PredictRequest` -> the ``/predict`` response."""
    try:
        request = PredictRequest.model_validate(event)
    except ValidationError as e:
        raise request_error(e.errors()) from e
    return service.predict_request(request, "lambda").model_dump()


def _answer(work: Callable[[], tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
    """Run one request's work; errors become ``(status, error body)``, nothing raises."""
    try:
        return work()
    except ServingError as e:
        return e.status, e.body()
    except Exception:
        log.exception("unhandled error in the Lambda handler")
        return 500, error_body("internal_error", "internal server error; it has been logged")


def handle_event(
    event: Any, service: Callable[[], RecognitionService], request_id: str = "-"
) -> dict[str, Any]:
    """One event -> a Lambda proxy response (HTTP events) or the response object (direct invokes).
    Errors become JSON; nothing raises. Writes the request's log line."""
    started = time.perf_counter()
    direct = is_direct_invoke(event)
    seen: dict[str, str | None] = {
        "method": "INVOKE" if direct else "-",
        "route": "direct" if direct else "unmatched",
        "model": None,
    }

    def work() -> tuple[int, dict[str, Any]]:
        svc = service()
        seen["model"] = svc.model_version
        if direct:
            return 200, direct_predict(event, svc)
        request = parse_event(event, svc.settings.max_request_bytes)
        seen["method"], seen["route"] = request.method, route_template(request.path) or "unmatched"
        return route(request, svc)

    status, body = _answer(work)
    latency_ms = (time.perf_counter() - started) * 1000.0
    log_request(request_id, str(seen["method"]), str(seen["route"]), status, latency_ms, seen["model"])
    if direct:
        return body if status == 200 else {"statusCode": status, **body}
    return _response(status, body)


def handler(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda entry point (``CMD ["text_recognizer.serving.lambda_handler.handler"]``)."""
    return handle_event(event, get_service, str(getattr(context, "aws_request_id", "-")))

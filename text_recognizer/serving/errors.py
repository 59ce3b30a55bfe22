"""Typed serving errors. Each maps to one HTTP status and a stable ``code`` in the JSON error body::

    {"error": {"code": "too_many_pixels", "message": "image is 9000x9000 = 81000000 pixels; the limit ..."}}

Bad input is always a 4xx; 503 means the server is busy (retry later); 500 is a bug and never shows a trace.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServingError(Exception):
    """Base class: ``status`` and ``code`` are fixed per subclass; ``message`` says what to change."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON error body shared by every error the API and the Lambda handler return."""
    return {"error": {"code": code, "message": message}}


class InvalidJSON(ServingError):
    status, code = 400, "invalid_json"


class InvalidRequest(ServingError):
    status, code = 422, "invalid_request"


class BadBase64(ServingError):
    status, code = 400, "bad_base64"


class NotAnImage(ServingError):
    status, code = 422, "not_an_image"


class PayloadTooLarge(ServingError):
    status, code = 413, "payload_too_large"


class TooManyPixels(ServingError):
    status, code = 413, "too_many_pixels"


class BadURL(ServingError):
    status, code = 400, "bad_url"


class ForbiddenURL(ServingError):
    status, code = 403, "forbidden_url"


class DownloadFailed(ServingError):
    status, code = 422, "download_failed"


class DownloadTooLarge(ServingError):
    status, code = 413, "download_too_large"


class UnknownPrediction(ServingError):
    status, code = 404, "unknown_prediction"


class Unauthorized(ServingError):
    status, code = 401, "unauthorized"


class BadFeedbackToken(ServingError):
    status, code = 403, "bad_feedback_token"


class UnchangedCorrection(ServingError):
    status, code = 422, "unchanged_correction"


class NotFound(ServingError):
    status, code = 404, "not_found"


class MethodNotAllowed(ServingError):
    status, code = 405, "method_not_allowed"


class RequestTimeout(ServingError):
    status, code = 408, "request_timeout"


class UnsupportedMediaType(ServingError):
    status, code = 415, "unsupported_media_type"


class Overloaded(ServingError):
    status, code = 503, "overloaded"


class PredictionTimeout(ServingError):
    status, code = 503, "prediction_timeout"


class PredictionFailed(ServingError):
    status, code = 503, "prediction_failed"


class StoreUnavailable(ServingError):
    """The monitoring store cannot be written (database down, file read-only, deleted or disk full)."""

    status, code = 503, "store_unavailable"

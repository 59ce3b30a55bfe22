"""One structured JSON log line per request, shared by the API and the Lambda handler (CloudWatch reads it).

Fields: ``request_id``, ``method``, ``route`` (the route template or ``direct`` for a direct Lambda invoke,
never the raw path of an unknown URL), ``status``, ``latency_ms``, ``model_version``. Never the image, the
URL or any other request content. Lines go to stdout through the ``text_recognizer.requests`` logger.
"""

from __future__ import annotations

import functools
import json
import logging
import sys

LOGGER_NAME = "text_recognizer.requests"


class _StdoutHandler(logging.Handler):
    """Writes to whatever ``sys.stdout`` is at the time (Lambda's runtime and pytest both replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


@functools.cache
def request_logger() -> logging.Logger:
    """The logger, with a plain stdout handler added the first time (bare JSON lines)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def log_request(
    request_id: str, method: str, route: str, status: int, latency_ms: float, model_version: str | None
) -> None:
    """Write the request's line (see the module docstring)."""
    line = {
        "event": "request",
        "request_id": request_id,
        "method": method,
        "route": route,
        "status": status,
        "latency_ms": round(latency_ms, 2),
        "model_version": model_version,
    }
    request_logger().info(json.dumps(line))

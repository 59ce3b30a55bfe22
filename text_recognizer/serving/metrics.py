"""Prometheus metrics of one app, on its own registry (several apps in one process never collide).

With ``PROMETHEUS_MULTIPROC_DIR`` set (``serve --workers N`` sets it), prometheus_client keeps the values in
files there and :meth:`Metrics.exposition` sums every worker's, so ``/metrics`` is the same from any worker.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "text_recognizer_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "text_recognizer_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "text_recognizer_http_in_flight",
            "HTTP requests being served.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.errors = Counter(
            "text_recognizer_errors", "Error responses by error code.", ["code"], registry=self.registry
        )
        self.confidence = Histogram(
            "text_recognizer_prediction_confidence",
            "Confidence of answered predictions.",
            buckets=CONFIDENCE_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "text_recognizer_predictions",
            "Answered predictions (API, web page), by model version and source.",
            ["model_version", "source"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "text_recognizer_feedback",
            "Flags received (API, web page), by model version and reason.",
            ["model_version", "reason"],
            registry=self.registry,
        )

    def prediction(self, model_version: str, source: str, confidence: float) -> None:
        """Count one answered prediction (called by the service, whoever asked: API or web page)."""
        self.predictions.labels(model_version, source).inc()
        self.confidence.observe(confidence)

    def flag(self, model_version: str, reason: str) -> None:
        """Count one stored flag."""
        self.feedback.labels(model_version, reason).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text format of these metrics (all workers' in multiprocess mode) and its content type."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

"""Prometheus metrics of one app, on its own registry (several apps in one process never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
            "text_recognizer_http_in_flight", "HTTP requests being served.", registry=self.registry
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
        self.feedback = Counter(
            "text_recognizer_feedback", "Flags received, by reason.", ["reason"], registry=self.registry
        )

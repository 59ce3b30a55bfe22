"""Hostile Lambda events get fast 4xx JSON errors, never a 500."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from text_recognizer.serving.core import RecognitionService
from text_recognizer.serving.lambda_handler import MAX_PARTS, handle_event
from text_recognizer.serving.settings import ServingSettings
from text_recognizer.serving.store import Store

from reliability_helpers import text_line_png


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_artifact: Path) -> RecognitionService:
    from text_recognizer.inference.predictor import load_predictor

    db = tmp_path_factory.mktemp("lambda") / "monitoring.db"
    settings = ServingSettings(model=tiny_artifact, db=f"sqlite:///{db}", ui=False)
    return RecognitionService(load_predictor(tiny_artifact), Store(settings.db), settings)


def http_event(path: str, body: str, headers: Any) -> dict[str, Any]:
    return {"requestContext": {"http": {"method": "POST"}}, "rawPath": path, "headers": headers, "body": body}


def multipart(parts: list[bytes], boundary: str = "b0") -> str:
    chunks = [f"--{boundary}\r\n".encode() + p + b"\r\n" for p in parts]
    return (b"".join(chunks) + f"--{boundary}--\r\n".encode()).decode("latin-1")


def file_part(data: bytes, name: str = "file") -> bytes:
    head = f'Content-Disposition: form-data; name="{name}"; filename="x.png"\r\n'
    return head.encode() + b"Content-Type: image/png\r\n\r\n" + data


def nested(depth: int) -> str:
    body = file_part(b"x")
    for level in range(depth):
        inner = f"Content-Type: multipart/mixed; boundary=n{level}\r\n\r\n".encode()
        body = inner + multipart([body], f"n{level}").encode("latin-1")
    return multipart([body])


MP = {"content-type": "multipart/form-data; boundary=b0"}
HOSTILE = {
    "headers_list": http_event("/predict", "{}", [["content-type", "application/json"]]),
    "headers_string": http_event("/predict", "{}", "content-type: application/json"),
    "lone_surrogate": http_event("/predict", '{"image": "\ud800"}', {}),
    "nested_2000": http_event("/predict/upload", nested(2000), MP),
    "50000_parts": http_event("/predict/upload", multipart([b"x" * 200] * 50_000), MP),
    "no_boundary": http_event("/predict/upload", "x", {"content-type": "multipart/form-data"}),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_events_get_fast_4xx_json(service: RecognitionService, name: str) -> None:
    started = time.monotonic()
    response = handle_event(HOSTILE[name], lambda: service)
    elapsed = time.monotonic() - started
    assert 400 <= response["statusCode"] < 500, (name, response)
    assert "error" in json.loads(response["body"])
    assert elapsed < 2.0, f"{name}: {elapsed:.1f} s"


def test_a_plain_upload_still_works(service: RecognitionService) -> None:
    body = multipart([file_part(text_line_png())]).encode("latin-1")
    event = {**http_event("/predict/upload", base64.b64encode(body).decode(), MP), "isBase64Encoded": True}
    response = handle_event(event, lambda: service)
    assert response["statusCode"] == 200, response
    assert MAX_PARTS == 1000

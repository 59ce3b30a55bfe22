"""The HTTP API with the real predictor (tiny staged artifact): happy paths; every bad input -> 4xx JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from text_recognizer.serving.api import create_app
from text_recognizer.serving.core import PredictorLike
from text_recognizer.serving.settings import ServingSettings

from serving_helpers import ScriptedPredictor, b64, bomb_png, image_server, png_bytes

PNG = png_bytes()


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"] and "Traceback" not in response.text
    return body


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with image_server(PNG) as url:
        yield url


def test_predict_json_base64_data_url_and_upload(client: TestClient, real_predictor: PredictorLike) -> None:
    expected = real_predictor.predict(PNG)
    answers = [
        client.post("/predict", json={"image": b64(PNG)}),
        client.post("/predict", json={"image": "data:image/png;base64," + b64(PNG)}),
        client.post("/predict/upload", files={"file": ("line.png", PNG, "image/png")}),
    ]
    ids = set()
    for r in answers:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["pred"] == expected.text
        assert body["confidence"] == pytest.approx(expected.confidence)
        assert body["model_version"] == real_predictor.model_version
        assert body["latency_ms"] > 0
        assert [ln["text"] for ln in body["lines"]] == [ln.text for ln in expected.lines]
        ids.add(body["prediction_id"])
    assert len(ids) == 3


def test_predict_by_url_from_an_allowed_local_server(
    make_client: Callable[..., TestClient],
    settings: ServingSettings,
    real_predictor: PredictorLike,
    server: str,
) -> None:
    client = make_client(replace(settings, allow_private_urls=True), real_predictor)
    r = client.post("/predict", json={"image_url": f"{server}/ok.png"})
    assert r.status_code == 200, r.text
    assert r.json()["pred"] == real_predictor.predict(PNG).text


def test_feedback_is_stored(client: TestClient, db_url: str) -> None:
    answer = client.post("/predict", json={"image": b64(PNG)}).json()
    pid, token = answer["prediction_id"], answer["feedback_token"]
    flag = {"prediction_id": pid, "correct_text": "hello", "reason": "wrong_text", "feedback_token": token}
    r = client.post("/feedback", json=flag)
    assert r.status_code == 200, r.text
    assert r.json()["prediction_id"] == pid
    with create_engine(db_url).connect() as conn:
        rows = conn.execute(text("SELECT prediction_id, corrected_text, reason FROM feedback")).all()
    assert rows == [(pid, "hello", "wrong_text")]


def test_unchanged_correction_is_refused(
    make_client: Callable[..., TestClient], settings: ServingSettings, db_url: str
) -> None:
    client = make_client(settings, ScriptedPredictor())  # reads "WxH": never empty, unlike an untrained model
    predicted = client.post("/predict", json={"image": b64(PNG)}).json()
    pid, pred, token = predicted["prediction_id"], predicted["pred"], predicted["feedback_token"]
    for same in (pred, f"  {pred}\n", pred.replace("\n", "\r\n")):
        r = client.post(
            "/feedback", json={"prediction_id": pid, "correct_text": same, "feedback_token": token}
        )
        body = assert_error(r, 422, "unchanged_correction")
        assert "same as the predicted text" in body["error"]["message"]
    changed = client.post(
        "/feedback", json={"prediction_id": pid, "correct_text": pred + " x", "feedback_token": token}
    )
    assert changed.status_code == 200, changed.text
    without_text = client.post(
        "/feedback", json={"prediction_id": pid, "reason": "not_handwriting", "feedback_token": token}
    )
    assert without_text.status_code == 200, without_text.text
    with create_engine(db_url).connect() as conn:
        rows = conn.execute(text("SELECT corrected_text FROM feedback ORDER BY id")).all()
    assert rows == [(pred.strip() + " x",), (None,)]


def test_health_metrics_and_docs(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["store"] == "ok" and health["model_version"]
    client.post("/predict", json={"image": b64(PNG)})
    client.post("/predict", json={"image": "@@@"})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert (
        'text_recognizer_http_requests_total{method="POST",route="/predict",status="200"} 1.0' in metrics.text
    )
    assert 'text_recognizer_errors_total{code="bad_base64"} 1.0' in metrics.text
    assert "text_recognizer_prediction_confidence_count 1.0" in metrics.text
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/predict/upload", "/feedback", "/health"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
    assert client.get("/", follow_redirects=False).headers["location"] == "/docs"


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("bad base64", {"json": {"image": "this is not base64!"}}, 400, "bad_base64"),
    ("empty image", {"json": {"image": ""}}, 400, "bad_base64"),
    ("data URL not base64", {"json": {"image": "data:image/png,abc"}}, 400, "bad_base64"),
    ("not an image", {"json": {"image": b64(b"hello, I am text" * 10)}}, 422, "not_an_image"),
    ("truncated png", {"json": {"image": b64(PNG[:60])}}, 422, "not_an_image"),
    ("decompression bomb", {"json": {"image": b64(bomb_png(10_000, 10_000))}}, 413, "too_many_pixels"),
    (
        "both fields",
        {"json": {"image": b64(PNG), "image_url": "https://example.com/a.png"}},
        422,
        "invalid_request",
    ),
    ("neither field", {"json": {}}, 422, "invalid_request"),
    ("wrong type", {"json": {"image": 42}}, 422, "invalid_request"),
    ("JSON array", {"json": [1, 2]}, 422, "invalid_request"),
    (
        "broken JSON",
        {"content": b'{"image": ', "headers": {"content-type": "application/json"}},
        400,
        "invalid_json",
    ),
    ("ftp URL", {"json": {"image_url": "ftp://example.com/a.png"}}, 400, "bad_url"),
    ("file URL", {"json": {"image_url": "file:///etc/passwd"}}, 400, "bad_url"),
    ("loopback URL", {"json": {"image_url": "http://127.0.0.1:8000/health"}}, 403, "forbidden_url"),
    (
        "metadata URL",
        {"json": {"image_url": "http://169.254.169.254/latest/meta-data/"}},
        403,
        "forbidden_url",
    ),
    ("private URL", {"json": {"image_url": "http://10.0.0.7/a.png"}}, 403, "forbidden_url"),
    ("localhost URL", {"json": {"image_url": "http://localhost/a.png"}}, 403, "forbidden_url"),
    ("URL too long", {"json": {"image_url": "https://example.com/" + "a" * 3000}}, 422, "invalid_request"),
]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(("name", "kwargs", "status", "code"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_predict_requests(
    client: TestClient, name: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    assert_error(client.post("/predict", **kwargs), status, code)


def test_bad_uploads_and_feedback(client: TestClient) -> None:
    assert_error(
        client.post("/predict/upload", files={"file": ("x.txt", b"plain text", "text/plain")}),
        422,
        "not_an_image",
    )
    assert_error(client.post("/predict/upload", data={"other": "x"}), 422, "invalid_request")
    assert_error(
        client.post("/feedback", json={"prediction_id": "0" * 32, "correct_text": "x"}),
        403,
        "bad_feedback_token",
    )
    signed = {"prediction_id": "0" * 32, "feedback_token": client.app.state.service.signer.token("0" * 32)}  # type: ignore[attr-defined]
    assert_error(client.post("/feedback", json=signed), 404, "unknown_prediction")
    assert_error(
        client.post("/feedback", json={"prediction_id": "../../etc", "correct_text": "x"}),
        422,
        "invalid_request",
    )
    assert_error(
        client.post("/feedback", json={"prediction_id": "0" * 32, "reason": "spam"}), 422, "invalid_request"
    )
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.get("/predict"), 405, "method_not_allowed")


def test_body_limits(
    make_client: Callable[..., TestClient], settings: ServingSettings, real_predictor: PredictorLike
) -> None:
    client = make_client(replace(settings, max_request_bytes=50_000, max_image_bytes=30_000), real_predictor)
    big = b"x" * 60_000
    assert_error(
        client.post("/predict", content=big, headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(10):
            yield b"x" * 10_000

    assert_error(
        client.post("/predict", content=chunks(), headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )
    image = png_bytes(400, 300, mode="RGB", fmt="BMP")[:36_000]  # over the image limit, under the body limit
    assert_error(client.post("/predict", json={"image": b64(image)}), 413, "payload_too_large")
    assert_error(
        client.post("/predict/upload", files={"file": ("a.bmp", image, "image/bmp")}),
        413,
        "payload_too_large",
    )


def test_oversized_download(
    make_client: Callable[..., TestClient],
    settings: ServingSettings,
    real_predictor: PredictorLike,
    server: str,
) -> None:
    client = make_client(replace(settings, allow_private_urls=True), real_predictor)
    assert_error(client.post("/predict", json={"image_url": f"{server}/big"}), 413, "download_too_large")
    assert_error(
        client.post("/predict", json={"image_url": f"{server}/big-chunked"}), 413, "download_too_large"
    )
    assert_error(
        client.post("/predict", json={"image_url": f"{server}/redirect-metadata"}), 403, "forbidden_url"
    )
    assert_error(client.post("/predict", json={"image_url": f"{server}/missing"}), 422, "download_failed")
    assert_error(client.post("/predict", json={"image_url": f"{server}/text"}), 422, "not_an_image")


def test_server_errors_are_json_without_a_trace(
    make_client: Callable[..., TestClient], settings: ServingSettings
) -> None:
    crashing = ScriptedPredictor(error=RuntimeError("secret internal detail"))
    client = make_client(settings, crashing)
    body = assert_error(client.post("/predict", json={"image": b64(PNG)}), 500, "internal_error")
    assert "secret" not in body["error"]["message"]
    slow = ScriptedPredictor(delay=5.0)
    client = make_client(replace(settings, predict_timeout_s=0.1), slow)
    assert_error(client.post("/predict", json={"image": b64(PNG)}), 503, "prediction_timeout")
    slow.release.set()


def test_body_limit_while_streaming(settings: ServingSettings) -> None:
    """A chunked body with no Content-Length is cut off at the limit, and the client gets the 413."""
    app = create_app(replace(settings, max_request_bytes=25_000), ScriptedPredictor())
    chunks = [{"type": "http.request", "body": b"x" * 10_000, "more_body": True} for _ in range(9)]
    chunks.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [413]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert len(chunks) >= 6  # stopped reading after the third chunk

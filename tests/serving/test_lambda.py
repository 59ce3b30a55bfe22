"""The Lambda handler on recorded event shapes: Function URL, API Gateway REST (v1) and HTTP API (v2)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from text_recognizer.serving import core, lambda_handler
from text_recognizer.serving.core import PredictorLike, RecognitionService

from serving_helpers import ScriptedPredictor

EVENTS = Path(__file__).parent / "events"


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def call(service: RecognitionService, evt: Any) -> tuple[int, dict[str, Any]]:
    response = lambda_handler.handle_event(evt, lambda: service)
    assert response["headers"]["content-type"] == "application/json"
    assert response["isBase64Encoded"] is False
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def service(
    make_service: Callable[..., RecognitionService], real_predictor: PredictorLike
) -> RecognitionService:
    return make_service(real_predictor)


def event_image(evt: dict[str, Any]) -> bytes:
    body = evt["body"]
    if evt.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    image = json.loads(body)["image"]
    return base64.b64decode(image.split(",", 1)[-1])


@pytest.mark.parametrize("name", ["function_url_predict.json", "apigw_v1_predict.json"])
def test_predict_events(service: RecognitionService, real_predictor: PredictorLike, name: str) -> None:
    evt = event(name)
    status, body = call(service, evt)
    assert status == 200, body
    assert body["pred"] == real_predictor.predict(event_image(evt)).text
    assert body["model_version"] == real_predictor.model_version
    assert [r.source for r in service.store.predictions()] == ["lambda"]


def test_multipart_upload_event_with_stage_prefix(service: RecognitionService, db_url: str) -> None:
    status, body = call(service, event("apigw_v2_upload.json"))
    assert status == 200, body
    assert len(body["prediction_id"]) == 32
    with create_engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT width, height FROM predictions")).one() == (96, 28)


def test_feedback_and_health_events(service: RecognitionService) -> None:
    _, predicted = call(service, event("function_url_predict.json"))
    evt = event("apigw_v1_feedback.json")
    evt["body"] = evt["body"].replace("PREDICTION_ID", predicted["prediction_id"])
    evt["body"] = evt["body"].replace("FEEDBACK_TOKEN", predicted["feedback_token"])
    status, body = call(service, evt)
    assert status == 200 and body["prediction_id"] == predicted["prediction_id"], body
    status, body = call(service, event("apigw_v2_health.json"))
    assert status == 200 and body["status"] == "ok"


def test_unchanged_correction_event(make_service: Callable[..., RecognitionService]) -> None:
    service = make_service(ScriptedPredictor())
    _, predicted = call(service, event("function_url_predict.json"))
    evt = event("apigw_v1_feedback.json")
    evt["body"] = json.dumps(
        {
            "prediction_id": predicted["prediction_id"],
            "correct_text": predicted["pred"],
            "feedback_token": predicted["feedback_token"],
        }
    )
    status, body = call(service, evt)
    assert status == 422 and body["error"]["code"] == "unchanged_correction", body


def test_raw_image_body(service: RecognitionService) -> None:
    evt = event("function_url_predict.json")
    evt["headers"]["content-type"] = "image/png"
    evt["body"] = base64.b64encode(event_image(event("function_url_predict.json"))).decode()
    evt["isBase64Encoded"] = True
    status, body = call(service, evt)
    assert status == 200, body


def _with(evt: dict[str, Any], **changes: Any) -> dict[str, Any]:
    evt = json.loads(json.dumps(evt))
    evt.update(changes)
    return evt


BAD_EVENTS: list[tuple[str, Any, int, str]] = [
    ("body marked base64 is not", event("function_url_bad_body.json"), 400, "bad_base64"),
    ("broken JSON", event("function_url_broken_json.json"), 400, "invalid_json"),
    ("no body", _with(event("function_url_predict.json"), body=None), 422, "invalid_request"),
    ("neither field", _with(event("function_url_predict.json"), body="{}"), 422, "invalid_request"),
    (
        "bad image base64",
        _with(event("function_url_predict.json"), body='{"image": "@@"}'),
        400,
        "bad_base64",
    ),
    (
        "private URL",
        _with(event("function_url_predict.json"), body='{"image_url": "http://10.0.0.1/x"}'),
        403,
        "forbidden_url",
    ),
    ("GET predict", _with(event("apigw_v1_predict.json"), httpMethod="GET"), 405, "method_not_allowed"),
    ("unknown path", _with(event("apigw_v1_predict.json"), path="/admin"), 404, "not_found"),
    ("not an HTTP event", {"Records": [{"eventSource": "aws:s3"}]}, 422, "invalid_request"),
    ("not an object", ["x"], 422, "invalid_request"),
    (
        "huge body",
        _with(event("function_url_predict.json"), body="x" * (17 * 2**20)),
        413,
        "payload_too_large",
    ),
    (
        "wrong content type",
        _with(event("function_url_predict.json"), headers={"content-type": "text/csv"}),
        415,
        "unsupported_media_type",
    ),
]


@pytest.mark.parametrize(("name", "evt", "status", "code"), BAD_EVENTS, ids=[b[0] for b in BAD_EVENTS])
def test_bad_events(service: RecognitionService, name: str, evt: Any, status: int, code: str) -> None:
    got_status, body = call(service, evt)
    assert (got_status, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]


def test_handler_loads_the_model_once_lazily(
    tiny_artifact: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEXT_RECOGNIZER_MODEL", str(tiny_artifact))
    monkeypatch.setenv("TEXT_RECOGNIZER_DB", db_url)
    monkeypatch.setattr(lambda_handler, "_service", None)
    built: list[RecognitionService] = []

    def counting_build(settings: Any) -> RecognitionService:
        built.append(core.build_service(settings))
        return built[-1]

    monkeypatch.setattr(lambda_handler, "build_service", counting_build)
    try:
        for _ in range(3):
            response = lambda_handler.handler(event("function_url_predict.json"), None)
            assert response["statusCode"] == 200, response["body"]
        assert len(built) == 1
        assert len(built[0].store.predictions()) == 3
    finally:
        for s in built:
            s.close()


def test_handler_reports_a_missing_model_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXT_RECOGNIZER_MODEL", str(tmp_path / "no-model"))
    monkeypatch.setenv("TEXT_RECOGNIZER_DB", f"sqlite:///{tmp_path / 'm.db'}")
    monkeypatch.setattr(lambda_handler, "_service", None)
    response = lambda_handler.handler(event("apigw_v2_health.json"), None)
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["error"]["code"] == "internal_error"


def test_direct_invoke_returns_the_predict_response(
    service: RecognitionService, real_predictor: PredictorLike
) -> None:
    image = event_image(event("function_url_predict.json"))
    for evt in (
        {"image": base64.b64encode(image).decode()},
        {"image": "data:image/png;base64," + base64.b64encode(image).decode()},
    ):
        body = lambda_handler.handle_event(evt, lambda: service)
        assert body["pred"] == real_predictor.predict(image).text, body
        assert {"confidence", "lines", "model_version", "prediction_id", "latency_ms"} <= body.keys()
        assert "statusCode" not in body
    assert [r.source for r in service.store.predictions()] == ["lambda", "lambda"]


DIRECT_BAD: list[tuple[str, dict[str, Any], int, str]] = [
    ("both fields", {"image": "aGk=", "image_url": "https://example.com/x.png"}, 422, "invalid_request"),
    ("not base64", {"image": "@@"}, 400, "bad_base64"),
    ("not an image", {"image": base64.b64encode(b"hello world").decode()}, 422, "not_an_image"),
    ("private URL", {"image_url": "http://10.0.0.1/x.png"}, 403, "forbidden_url"),
    ("metadata URL", {"image_url": "http://169.254.169.254/latest/meta-data"}, 403, "forbidden_url"),
    ("not http", {"image_url": "file:///etc/passwd"}, 400, "bad_url"),
    ("image not a string", {"image": 12}, 422, "invalid_request"),
]


@pytest.mark.parametrize(("name", "evt", "status", "code"), DIRECT_BAD, ids=[b[0] for b in DIRECT_BAD])
def test_direct_invoke_errors(
    service: RecognitionService, name: str, evt: dict[str, Any], status: int, code: str
) -> None:
    body = lambda_handler.handle_event(evt, lambda: service)
    assert (body["statusCode"], body["error"]["code"]) == (status, code), body
    assert not service.store.predictions()


def test_one_json_log_line_per_event_without_the_image(
    service: RecognitionService, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    image_evt = event("function_url_predict.json")
    lambda_handler.handle_event(image_evt, lambda: service, "req-1")
    lambda_handler.handle_event({"image": "@@"}, lambda: service, "req-2")
    lambda_handler.handle_event(_with(image_evt, rawPath="/nope"), lambda: service, "req-3")
    out = capsys.readouterr().out
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert [(ln["request_id"], ln["route"], ln["status"]) for ln in lines] == [
        ("req-1", "/predict", 200),
        ("req-2", "direct", 400),
        ("req-3", "unmatched", 404),
    ]
    assert all(ln["model_version"] == service.model_version and ln["latency_ms"] >= 0 for ln in lines)
    assert json.loads(image_evt["body"])["image"][-40:] not in out

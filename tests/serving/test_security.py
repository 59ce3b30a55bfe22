"""Access control and admission: the API key, feedback tokens, the page's login and origin check, and
overload refused before the body is read."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from text_recognizer.serving.security import AdmissionMiddleware, keys_match, presented_key, secret_path
from text_recognizer.serving.settings import ServingSettings

from serving_helpers import ScriptedPredictor, b64, png_bytes, wait_for

PNG = png_bytes()
KEY = "s3cret-key"


def test_key_helpers() -> None:
    assert keys_match(KEY, KEY) and not keys_match(KEY + "x", KEY) and not keys_match(None, KEY)
    assert presented_key({"authorization": f"Bearer {KEY}"}) == KEY
    assert presented_key({"authorization": f"bearer  {KEY} "}) == KEY
    assert presented_key({"x-api-key": KEY}) == KEY
    assert presented_key({"authorization": f"Basic {KEY}"}) is None
    assert presented_key({}) is None


def test_api_key_is_off_by_default(client: TestClient) -> None:
    assert client.post("/predict", json={"image": b64(PNG)}).status_code == 200


def test_api_key_guards_predict_upload_and_feedback(
    make_client: Callable[..., TestClient], db_url: str
) -> None:
    client = make_client(ServingSettings(db=db_url, ui=False, api_key=KEY), ScriptedPredictor())
    body = {"image": b64(PNG)}
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = client.post("/predict", json=body, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (headers, r.text)
    assert client.post("/predict/upload", files={"file": ("a.png", PNG)}).status_code == 401
    assert client.post("/feedback", json={"prediction_id": "a" * 32}).status_code == 401
    assert client.get("/health").status_code == 200  # probes need no key
    ok = client.post("/predict", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200, ok.text
    up = client.post("/predict/upload", files={"file": ("a.png", PNG)}, headers={"X-API-Key": KEY})
    assert up.status_code == 200, up.text
    flag = {"prediction_id": ok.json()["prediction_id"], "feedback_token": ok.json()["feedback_token"]}
    assert client.post("/feedback", json=flag, headers={"X-API-Key": KEY}).status_code == 200


def test_feedback_needs_the_token_of_that_prediction(client: TestClient) -> None:
    first = client.post("/predict", json={"image": b64(PNG)}).json()
    second = client.post("/predict", json={"image": b64(PNG)}).json()
    pid = first["prediction_id"]
    for token in (None, "", "0" * 64, second["feedback_token"]):
        flag = {"prediction_id": pid, "correct_text": "x", "feedback_token": token}
        r = client.post("/feedback", json=flag)
        assert r.status_code == 403 and r.json()["error"]["code"] == "bad_feedback_token", (token, r.text)
    # an unknown id with a made-up token is the same 403: nothing is learnt about which ids exist
    r = client.post("/feedback", json={"prediction_id": "f" * 32, "feedback_token": "0" * 64})
    assert r.status_code == 403
    good = {"prediction_id": pid, "correct_text": "x", "feedback_token": first["feedback_token"]}
    assert client.post("/feedback", json=good).status_code == 200


def test_feedback_tokens_survive_a_restart_and_follow_the_secret(
    make_client: Callable[..., TestClient], db_url: str
) -> None:
    predictor = ScriptedPredictor()
    first = make_client(ServingSettings(db=db_url, ui=False), predictor)
    answer = first.post("/predict", json={"image": b64(PNG)}).json()
    path = secret_path(db_url)
    assert path.parent == Path(db_url.removeprefix("sqlite:///")).parent
    assert path.stat().st_mode & 0o777 == 0o600
    restarted = make_client(ServingSettings(db=db_url, ui=False), predictor)
    flag = {"prediction_id": answer["prediction_id"], "feedback_token": answer["feedback_token"]}
    assert restarted.post("/feedback", json=flag).status_code == 200
    other_secret = make_client(ServingSettings(db=db_url, ui=False, secret="another"), predictor)
    assert other_secret.post("/feedback", json=flag).status_code == 403


def _page_client(make_client: Callable[..., TestClient], db_url: str, **overrides: Any) -> TestClient:
    return make_client(ServingSettings(db=db_url, ui=True, **overrides), ScriptedPredictor())


def test_page_asks_for_the_key_when_one_is_set(make_client: Callable[..., TestClient], db_url: str) -> None:
    client = _page_client(make_client, db_url, api_key=KEY)
    assert client.get("/config").status_code == 401
    upload = client.post("/gradio_api/upload", files={"files": ("a.png", PNG)})
    assert upload.status_code == 401, upload.text
    assert client.post("/login", data={"username": "me", "password": "wrong"}).status_code == 400
    assert client.post("/login", data={"username": "me", "password": KEY}).status_code == 200
    assert client.get("/config").status_code == 200
    assert client.post("/gradio_api/upload", files={"files": ("a.png", PNG)}).status_code == 200


def test_page_refuses_cross_site_posts(make_client: Callable[..., TestClient], db_url: str) -> None:
    client = _page_client(make_client, db_url)
    files = {"files": ("a.png", PNG)}
    r = client.post("/gradio_api/upload", files=files, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
    r = client.post("/gradio_api/upload", files=files, headers={"Origin": "http://testserver"})
    assert r.status_code == 200, r.text
    assert client.post("/gradio_api/upload", files=files).status_code == 200  # no Origin: not a browser
    assert client.get("/config", headers={"Origin": "https://evil.example"}).status_code == 200


def test_overload_is_refused_before_the_body_is_read() -> None:
    release = asyncio.Event()
    reads: list[str] = []

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> list[int]:
        mw = AdmissionMiddleware(slow_app, limit=2)
        statuses: list[int] = []

        def client(name: str) -> tuple[Any, Any]:
            async def receive() -> dict[str, Any]:
                reads.append(name)
                return {"type": "http.request", "body": b"x", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            return receive, send

        scope = {"type": "http", "path": "/predict", "method": "POST", "headers": []}
        held = [asyncio.create_task(mw(scope, *client(f"held{i}"))) for i in range(2)]
        await asyncio.sleep(0.01)
        await mw(scope, *client("refused"))  # answered at once, while two are held
        other = {**scope, "path": "/health", "method": "GET"}
        health = asyncio.create_task(mw(other, *client("health")))  # not a predict route: not counted
        release.set()
        await asyncio.gather(*held, health)
        await mw(scope, *client("after"))  # slots are given back
        return statuses

    statuses = asyncio.run(scenario())
    assert statuses[0] == 503 and sorted(statuses[1:]) == [200, 200, 200, 200], statuses
    assert "refused" not in reads and "after" in reads


def test_a_full_queue_answers_503_overloaded(make_client: Callable[..., TestClient], db_url: str) -> None:
    predictor = ScriptedPredictor(delay=30)
    settings = ServingSettings(db=db_url, ui=False, max_concurrency=1, max_queue=0)
    client = make_client(settings, predictor)
    held = threading.Thread(target=client.post, args=("/predict",), kwargs={"json": {"image": b64(PNG)}})
    held.start()
    try:
        assert wait_for(lambda: predictor.calls == 1, timeout=20)
        r = client.post("/predict/upload", files={"file": ("a.png", PNG)})
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded", r.text
        assert r.headers["retry-after"] == "1"
    finally:
        predictor.release.set()
        held.join(timeout=30)
    assert client.post("/predict", json={"image": b64(PNG)}).status_code == 200


@pytest.mark.skipif(os.name != "posix", reason="file modes")
def test_secret_from_settings_writes_no_file(tmp_path: Path) -> None:
    from text_recognizer.serving.security import load_secret

    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert load_secret("given", db) == b"given"
    assert not secret_path(db).exists()
    made = load_secret(None, db)
    assert len(made) == 64 and load_secret(None, db) == made

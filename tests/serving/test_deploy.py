"""One API everywhere: raw image bodies, the error format with the page mounted, offline /docs, request log
lines, limits named the same way, `serve` honouring TEXT_RECOGNIZER_UI, one clear line for a missing model."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from text_recognizer.cli import app as cli_app
from text_recognizer.serving import api
from text_recognizer.serving.core import PredictorLike, check_image
from text_recognizer.serving.errors import TooManyPixels
from text_recognizer.serving.settings import ServingSettings

from serving_helpers import b64, png_bytes

PNG = png_bytes()


@pytest.fixture(autouse=True)
def restore_environ() -> Iterator[None]:
    """run_server passes settings to its workers through os.environ: undo that after each test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body


def test_raw_image_body_on_predict(client: TestClient, real_predictor: PredictorLike) -> None:
    expected = real_predictor.predict(PNG).text
    for content_type in ("image/png", "application/octet-stream", "image/png; charset=binary"):
        r = client.post("/predict", content=PNG, headers={"content-type": content_type})
        assert r.status_code == 200, r.text
        assert r.json()["pred"] == expected
    assert_error(
        client.post("/predict", content=b"not png", headers={"content-type": "image/png"}),
        422,
        "not_an_image",
    )
    assert_error(
        client.post("/predict", content=b"a,b", headers={"content-type": "text/csv"}),
        415,
        "unsupported_media_type",
    )
    assert_error(
        client.post("/predict", content=b"{", headers={"content-type": "application/json"}),
        400,
        "invalid_json",
    )
    body = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "image/*"} <= body.keys()


def test_404_and_405_keep_the_api_format_with_the_page_mounted(
    make_client: Callable[..., TestClient], settings: ServingSettings, real_predictor: PredictorLike
) -> None:
    client = make_client(replace(settings, ui=True), real_predictor)
    assert client.get("/").status_code == 200 and "<html" in client.get("/").text.lower()  # the page is there
    assert_error(client.get("/no/such/route"), 404, "not_found")
    r = client.get("/predict")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"
    assert_error(client.post("/health"), 405, "method_not_allowed")
    assert client.post("/predict", json={"image": "@@"}).json()["error"]["code"] == "bad_base64"


def test_docs_work_offline(client: TestClient) -> None:
    html = client.get("/docs").text
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert asset in html
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 10_000, asset
    assert client.get("/openapi.json").status_code == 200


def test_one_log_line_per_request_with_its_id(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    ok = client.post("/predict", json={"image": b64(PNG)})
    bad = client.get("/no/such/path/secret-token", headers={"x-request-id": "client-id-1"})
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith('{"event"')]
    assert [(ln["route"], ln["status"]) for ln in lines] == [("/predict", 200), ("unmatched", 404)]
    assert lines[0]["request_id"] == ok.headers["x-request-id"] and len(lines[0]["request_id"]) == 32
    assert lines[1]["request_id"] == bad.headers["x-request-id"] == "client-id-1"
    assert lines[0]["model_version"] == ok.json()["model_version"] and lines[0]["latency_ms"] > 0
    assert "secret-token" not in json.dumps(lines)


def _header_only_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [7_000, 12_000])
def test_pixel_limit_is_named_once(side: int) -> None:
    with pytest.raises(TooManyPixels) as e:
        check_image(_header_only_png(side, side), 40_000_000)
    assert f"{side * side} pixels" in e.value.message
    assert "exceeds the limit of 40000000" in e.value.message
    assert "80000000" not in e.value.message


def _serve_settings(monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]) -> ServingSettings:
    """Run `serve ARGS` with uvicorn replaced: the settings its worker processes would read."""
    import uvicorn

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    seen: list[ServingSettings] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.append(ServingSettings.from_env()))
    result = CliRunner().invoke(cli_app, ["serve", *args])
    assert result.exit_code == 0, result.output
    return seen[0]


def test_serve_respects_text_recognizer_ui(monkeypatch: pytest.MonkeyPatch, tiny_artifact: Path) -> None:
    model = {"TEXT_RECOGNIZER_MODEL": str(tiny_artifact)}
    assert _serve_settings(monkeypatch, [], {**model, "TEXT_RECOGNIZER_UI": "0"}).ui is False
    assert _serve_settings(monkeypatch, ["--ui"], {**model, "TEXT_RECOGNIZER_UI": "0"}).ui is True
    assert _serve_settings(monkeypatch, ["--no-ui"], {**model, "TEXT_RECOGNIZER_UI": "1"}).ui is False
    monkeypatch.delenv("TEXT_RECOGNIZER_UI")
    assert _serve_settings(monkeypatch, [], model).ui is True


def test_serve_sets_up_prometheus_multiprocess_for_workers(
    monkeypatch: pytest.MonkeyPatch, tiny_artifact: Path
) -> None:
    import uvicorn

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("TEXT_RECOGNIZER_MODEL", str(tiny_artifact))
    dirs: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: dirs.append(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    api.run_server(workers=2)
    assert dirs and Path(dirs[0]).name.startswith("text-recognizer-prometheus-")
    assert not Path(dirs[0]).exists()  # removed when the server stops
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_serve_without_a_model_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="text-recognizer stage CHECKPOINT"):
        api.run_server(model=tmp_path / "nothing")

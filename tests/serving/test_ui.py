"""The web page's handlers, in-process and against a remote API, and the page mounted in the app."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import get_args

import gradio as gr
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from text_recognizer.serving.api import create_app
from text_recognizer.serving.core import PredictorLike, RecognitionService
from text_recognizer.serving.schemas import FeedbackRequest, FlagReason
from text_recognizer.serving.settings import ServingSettings
from text_recognizer.serving.ui import (
    REASON_LABELS,
    LocalBackend,
    RemoteBackend,
    RemoteError,
    UIHandlers,
    example_images,
    upload_folder,
)

from serving_helpers import ScriptedPredictor, live_server, png_bytes


@pytest.fixture
def image_file(tmp_path: Path) -> Iterator[str]:
    """An uploaded image: a file in Gradio's upload cache (the page reads no other)."""
    path = upload_folder() / f"test-{tmp_path.name}" / "line.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(png_bytes())
    yield str(path)
    shutil.rmtree(path.parent)


def test_local_handlers_predict_and_flag(
    make_service: Callable[..., RecognitionService], real_predictor: PredictorLike, image_file: str
) -> None:
    service = make_service(real_predictor)
    handlers = UIHandlers(LocalBackend(lambda: service))
    text, info, ticket, prefill, status, drawn = handlers.predict(image_file)
    assert text == prefill == real_predictor.predict(Path(image_file).read_bytes()).text
    assert "Confidence" in info and real_predictor.model_version in info and status == ""
    assert drawn is not None and drawn.size == Image.open(image_file).size
    assert ticket is not None
    saved = handlers.flag(ticket, "hello", "wrong_text")
    assert "Saved as feedback #1" in saved
    assert [s.text for s in service.store.corrected_samples()] == ["hello"]
    assert [r.source for r in service.store.predictions()] == ["ui"]
    assert handlers.predict(None) == ("", "", None, "", "", None)
    with pytest.raises(gr.Error):
        handlers.flag(None, "x", "wrong_text")


def test_flag_with_the_prefilled_text_unchanged_is_refused(
    make_service: Callable[..., RecognitionService], image_file: str
) -> None:
    service = make_service(ScriptedPredictor())
    handlers = UIHandlers(LocalBackend(lambda: service))
    _, _, pid, prefill, _, _ = handlers.predict(image_file)
    with pytest.raises(gr.Error, match="same as the predicted text"):
        handlers.flag(pid, prefill, "wrong_text")
    assert list(service.store.corrected_samples()) == []
    assert "Saved as feedback" in handlers.flag(pid, prefill + "!", "wrong_text")


def test_remote_backend_against_a_live_api(
    settings: ServingSettings, real_predictor: PredictorLike, image_file: str, tmp_path: Path
) -> None:
    with live_server(create_app(settings, real_predictor)) as url:
        handlers = UIHandlers(RemoteBackend(url + "/"))
        text, _, ticket, _, _, _ = handlers.predict(image_file)
        assert text == real_predictor.predict(Path(image_file).read_bytes()).text
        assert ticket is not None and len(ticket[0]) == 32
        assert "Saved as feedback" in handlers.flag(ticket, "hello", "missing_text")
        with pytest.raises(gr.Error, match="feedback_token"):
            handlers.flag((ticket[0], "0" * 64), "hello", "missing_text")
        bad = Path(image_file).with_name("bad.png")
        bad.write_bytes(b"not an image")
        with pytest.raises(gr.Error, match="not a readable image"):
            handlers.predict(str(bad))
        with pytest.raises(RemoteError, match="feedback_token"):
            RemoteBackend(url).feedback(FeedbackRequest(prediction_id="a" * 32, correct_text="x"))


def test_remote_backend_unreachable() -> None:
    backend = RemoteBackend("http://127.0.0.1:9", timeout_s=2.0)
    with pytest.raises(RemoteError, match="cannot be reached"):
        backend.predict(png_bytes())


def test_reasons_and_examples() -> None:
    assert set(REASON_LABELS) == set(get_args(FlagReason))
    examples = example_images()
    assert len(examples) >= 3
    for path in examples:
        with Image.open(path) as img:
            assert img.format == "PNG" and min(img.size) >= 32


def test_page_mounted_at_root(
    make_client: Callable[..., TestClient], settings: ServingSettings, real_predictor: PredictorLike
) -> None:
    client = make_client(replace(settings, ui=True), real_predictor)
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert client.get("/health").json()["status"] == "ok"  # API routes keep precedence
    assert client.post("/predict", json={}).json()["error"]["code"] == "invalid_request"


def test_metrics_count_predictions_and_flags_made_in_the_page(
    make_client: Callable[..., TestClient],
    settings: ServingSettings,
    real_predictor: PredictorLike,
    image_file: str,
) -> None:
    client = make_client(replace(settings, ui=True), real_predictor)
    assert isinstance(client.app, FastAPI)
    # the handlers of the page mounted in this app: they call the app's own service
    handlers = UIHandlers(LocalBackend(lambda: client.app.state.service))  # type: ignore[union-attr]
    _, _, ticket, _, _, _ = handlers.predict(image_file)
    handlers.flag(ticket, "hello", "wrong_text")
    client.post("/predict/upload", files={"file": ("line.png", png_bytes(), "image/png")})
    metrics = client.get("/metrics").text
    version = real_predictor.model_version
    assert f'text_recognizer_predictions_total{{model_version="{version}",source="ui"}} 1.0' in metrics
    assert f'text_recognizer_predictions_total{{model_version="{version}",source="upload"}} 1.0' in metrics
    assert f'text_recognizer_feedback_total{{model_version="{version}",reason="wrong_text"}} 1.0' in metrics
    assert "text_recognizer_prediction_confidence_count 2.0" in metrics

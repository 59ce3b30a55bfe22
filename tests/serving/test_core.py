"""The serving core: base64 and data URLs, header checks, time and concurrency limits, store failures."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from text_recognizer.images import MAX_PIXELS
from text_recognizer.serving.core import PredictorLike, RecognitionService, check_image, decode_base64_image
from text_recognizer.serving.errors import (
    BadBase64,
    NotAnImage,
    Overloaded,
    PayloadTooLarge,
    PredictionTimeout,
    StoreUnavailable,
    TooManyPixels,
)
from text_recognizer.serving.schemas import PredictRequest

from serving_helpers import ScriptedPredictor, b64, bomb_png, fill_disk, noise_png, png_bytes, wait_for

PNG = png_bytes()


@pytest.mark.parametrize(
    "encoded",
    [
        b64(PNG),
        "data:image/png;base64," + b64(PNG),
        "DATA:image/png;BASE64," + b64(PNG),
        "data:;base64," + b64(PNG),
        "\n".join(b64(PNG)[i : i + 76] for i in range(0, len(b64(PNG)), 76)),  # MIME line breaks
        base64.urlsafe_b64encode(PNG).decode().rstrip("="),  # URL-safe, no padding
    ],
)
def test_base64_forms(encoded: str) -> None:
    assert decode_base64_image(encoded, 2**20) == PNG


@pytest.mark.parametrize(
    ("encoded", "match"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not base64 at all!", "not valid base64"),
        ("data:image/png," + b64(PNG), "base64-encoded"),
        ("data:image/png;base64", "no ','"),
        ("=" * 8, "decodes to nothing|not valid"),
    ],
)
def test_bad_base64(encoded: str, match: str) -> None:
    with pytest.raises(BadBase64, match=match):
        decode_base64_image(encoded, 2**20)


def test_base64_size_limit_checked_before_decoding() -> None:
    with pytest.raises(PayloadTooLarge, match="limit is 1000"):
        decode_base64_image("A" * 2000, 1000)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_check_image_reads_the_header_only() -> None:
    assert check_image(PNG, MAX_PIXELS) == (160, 40)
    assert check_image(png_bytes(fmt="JPEG", mode="RGB"), MAX_PIXELS) == (160, 40)
    with pytest.raises(TooManyPixels, match="limit"):
        check_image(bomb_png(10_000, 10_000), MAX_PIXELS)  # past Pillow's own bomb limit
    with pytest.raises(TooManyPixels, match="7000x7000"):
        check_image(bomb_png(7_000, 7_000), MAX_PIXELS)  # between our limit and Pillow's
    with pytest.raises(TooManyPixels, match="160x40"):
        check_image(PNG, 1000)
    with pytest.raises(NotAnImage, match="not a readable image"):
        check_image(b"%PDF-1.4 hello", MAX_PIXELS)
    with pytest.raises(NotAnImage, match="not a readable image"):
        check_image(b"%!PS-Adobe-3.0 EPSF-3.0\n", MAX_PIXELS)  # EPS would run Ghostscript: refused
    with pytest.raises(NotAnImage, match="at least 2x2"):
        check_image(png_bytes(1, 1), MAX_PIXELS)


def test_undecodable_body_after_a_good_header(
    make_service: Callable[..., RecognitionService], real_predictor: PredictorLike
) -> None:
    service = make_service(real_predictor)
    with pytest.raises(NotAnImage, match="not a readable image"):
        service.predict_bytes(PNG[: len(PNG) // 2], "json")  # truncated: header fine, pixels missing


def test_prediction_timeout_keeps_the_slot_until_the_thread_ends(
    make_service: Callable[..., RecognitionService],
) -> None:
    slow = ScriptedPredictor(delay=30.0)
    service = make_service(slow, predict_timeout_s=0.2, max_concurrency=1, max_queue=0)
    with pytest.raises(PredictionTimeout, match=r"longer than 0\.2 s"):
        service.predict_bytes(PNG, "json")
    # the timed-out prediction still runs: the only slot is taken, the next request is refused at once
    with pytest.raises(Overloaded, match="busy"):
        service.predict_bytes(PNG, "json")
    slow.release.set()
    slow.delay = 0.0
    assert wait_for(lambda: service._slots._value == 1)
    assert service.predict_bytes(PNG, "json").pred == "160x40"


def test_queue_bound(make_service: Callable[..., RecognitionService]) -> None:
    slow = ScriptedPredictor(delay=30.0)
    service = make_service(slow, max_concurrency=1, max_queue=1)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(service.predict_bytes, PNG, "json")
        second = pool.submit(service.predict_bytes, PNG, "json")
        assert wait_for(lambda: slow.calls == 1)
        assert wait_for(lambda: service._slots._value == 0)
        with pytest.raises(Overloaded):
            service.predict_bytes(PNG, "json")
        slow.release.set()
        assert first.result(timeout=10).pred == second.result(timeout=10).pred == "160x40"


def test_concurrent_requests_share_one_predictor(
    make_service: Callable[..., RecognitionService], real_predictor: PredictorLike
) -> None:
    service = make_service(real_predictor, max_concurrency=2, max_queue=32)
    images = [png_bytes(120 + 10 * i, 40, f"line {i}") for i in range(8)]
    expected = [real_predictor.predict(img).text for img in images]
    barrier = threading.Barrier(8)

    def one(img: bytes) -> str:
        barrier.wait()
        return service.predict_bytes(img, "json").pred

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, images))
    assert got == expected
    assert len(service.store.predictions()) == 8


def test_a_store_that_cannot_write_fails_the_prediction_with_503(
    make_service: Callable[..., RecognitionService], real_predictor: PredictorLike
) -> None:
    service = make_service(real_predictor)
    service.predict_request(PredictRequest(image=b64(PNG)))
    fill_disk(service.store)
    with pytest.raises(StoreUnavailable) as e:
        service.predict_request(PredictRequest(image=b64(noise_png(0))))
    assert e.value.status == 503 and "nothing was recorded" in e.value.message
    assert len(service.store.predictions()) == 1

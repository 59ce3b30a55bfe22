"""Hostile input against the real app (tiny model, real predictor and store): Hypothesis-made image files,
corrupted images, arbitrary JSON and raw bodies. Never a 5xx; every refusal is a JSON error body; memory stays
bounded on decompression bombs and oversized bodies.
"""

from __future__ import annotations

import base64
import io
import json
import resource
import struct
import zlib
from typing import Any, Protocol

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image

from reliability_helpers import fuzz_settings

FORMATS = ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]
MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]
ERROR_CODES = {400, 403, 404, 405, 413, 415, 422}


class HTTPResponse(Protocol):
    """What these tests read of a response (TestClient answers with httpx or httpx2 responses)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def check_response(response: HTTPResponse) -> None:
    """200 with a well-formed prediction, or a 4xx with the JSON error body; never anything else."""
    assert response.status_code == 200 or response.status_code in ERROR_CODES, response.text[:500]
    body = response.json()
    if response.status_code == 200:
        assert isinstance(body["pred"], str) and 0.0 <= body["confidence"] <= 1.0
        assert len(body["prediction_id"]) == 32
    else:
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert body["error"]["message"]


def post_image(client: TestClient, data: bytes, upload: bool) -> HTTPResponse:
    if upload:
        return client.post("/predict/upload", files={"file": ("image", data, "application/octet-stream")})
    return client.post("/predict", json={"image": base64.b64encode(data).decode()})


@st.composite
def image_files(draw: st.DrawFn) -> bytes:
    """A real image file: any size from 1x1, any mode and format Pillow can write, noise or stripes."""
    width, height = draw(st.integers(1, 400)), draw(st.integers(1, 200))
    mode, fmt = draw(st.sampled_from(MODES)), draw(st.sampled_from(FORMATS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
    if draw(st.booleans()):  # dark strokes on light paper rather than noise
        pixels = np.where(pixels % 7 == 0, 20, 235).astype(np.uint8)
    img = Image.fromarray(pixels).convert(mode)
    buf = io.BytesIO()
    try:
        img.save(buf, fmt)
    except (OSError, ValueError, KeyError):
        assume(False)  # a mode this format cannot hold
    return buf.getvalue()


@st.composite
def corrupted_images(draw: st.DrawFn) -> bytes:
    """A valid image file with bytes flipped, truncated or with junk inserted."""
    data = bytearray(draw(image_files()))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "truncate", "insert"]))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "truncate":
            del data[max(at, 8) :]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
request_fields = st.fixed_dictionaries(
    {},
    optional={
        "image": json_values | st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
        "image_url": json_values | st.from_regex(r"(https?|ftp|file|gopher)://[^\s]{0,40}", fullmatch=True),
        "prediction_id": json_values | st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
        "correct_text": json_values,
        "reason": json_values | st.sampled_from(["wrong_text", "other", "x"]),
    },
)


def fuzz_images(client: TestClient, data: bytes, upload: bool) -> None:
    check_response(post_image(client, data, upload))


def fuzz_json(client: TestClient, path: str, body: Any) -> None:
    check_response(client.post(path, content=json.dumps(body), headers={"content-type": "application/json"}))


# ------------------------------------------------------------------------------------- default (fast) run


@fuzz_settings(40)
@given(data=image_files(), upload=st.booleans())
def test_any_image_file(fuzz_client: TestClient, data: bytes, upload: bool) -> None:
    fuzz_images(fuzz_client, data, upload)


@fuzz_settings(40)
@given(data=corrupted_images() | st.binary(max_size=2048), upload=st.booleans())
def test_corrupted_and_random_bytes(fuzz_client: TestClient, data: bytes, upload: bool) -> None:
    fuzz_images(fuzz_client, data, upload)


@fuzz_settings(60)
@given(path=st.sampled_from(["/predict", "/feedback"]), body=json_values | request_fields)
def test_any_json_body(fuzz_client: TestClient, path: str, body: Any) -> None:
    fuzz_json(fuzz_client, path, body)


@fuzz_settings(30)
@given(path=st.sampled_from(["/predict", "/feedback", "/predict/upload"]), raw=st.binary(max_size=512))
def test_raw_bodies(fuzz_client: TestClient, path: str, raw: bytes) -> None:
    content_type = "application/json" if path != "/predict/upload" else "multipart/form-data; boundary=x"
    check_response(fuzz_client.post(path, content=raw, headers={"content-type": content_type}))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` gray pixels but holds almost no data (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("size", [(100_000, 100_000), (60_000, 1_000), (1, 50_000_000)])
def test_decompression_bombs_are_refused_before_decoding(
    fuzz_client: TestClient, size: tuple[int, int]
) -> None:
    before = peak_rss_mib()
    for upload in (False, True):
        response = post_image(fuzz_client, png_header_only(*size), upload)
        assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_pixels"
    assert peak_rss_mib() - before < 100  # decoding 10^10 pixels would take gigabytes


def test_oversized_body_is_refused_without_buffering_it(fuzz_client: TestClient) -> None:
    before = peak_rss_mib()
    huge = b"{" + b" " * (20 * 2**20) + b"}"
    response = fuzz_client.post("/predict", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert peak_rss_mib() - before < 150  # the 20 MiB body itself, not copies of it


# ------------------------------------------------------------------------------------------ long versions


@pytest.mark.slow
@fuzz_settings(1500)
@given(data=image_files() | corrupted_images() | st.binary(max_size=8192), upload=st.booleans())
def test_image_bytes_long(fuzz_client: TestClient, data: bytes, upload: bool) -> None:
    fuzz_images(fuzz_client, data, upload)


@pytest.mark.slow
@fuzz_settings(3000)
@given(path=st.sampled_from(["/predict", "/feedback"]), body=json_values | request_fields)
def test_json_body_long(fuzz_client: TestClient, path: str, body: Any) -> None:
    fuzz_json(fuzz_client, path, body)


@pytest.mark.slow
def test_memory_stays_bounded_over_many_requests(fuzz_client: TestClient) -> None:
    """Resident memory after 300 more predictions is within 50 MiB of after the first 50 (no leak)."""
    rng = np.random.default_rng(0)

    def send(n: int) -> None:
        for _ in range(n):
            pixels = np.where(rng.random((60, 300)) < 0.1, 20, 235).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, "PNG")
            assert post_image(fuzz_client, buf.getvalue(), upload=False).status_code == 200

    send(50)
    settled = current_rss_mib()
    send(300)
    assert current_rss_mib() - settled < 50


def current_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")

"""Request -> predictor -> response, shared by the HTTP API, the Lambda handler and the web page.

Limits applied here, in order: encoded size (before decoding base64), decoded size, image format and pixel
count (read from the header, so a decompression bomb is refused before it is decoded), then prediction time.
Every refusal is a :class:`~text_recognizer.serving.errors.ServingError` with its own 4xx status and code.

Concurrency: predictions run on a pool of ``max_concurrency`` threads; at most ``max_queue`` more may wait,
the rest are refused at once with ``503 overloaded``. Each thread either calls the one in-process predictor
(one ONNX Runtime session, which is thread-safe) or hands the image to a worker process of a
:class:`~text_recognizer.serving.workers.WorkerPool`. A prediction that passes ``predict_timeout_s`` (queueing
included) answers ``503 prediction_timeout``: in a worker process, the worker is killed, so the work stops;
in-process, its thread keeps its pool slot until it really ends, so the bound always holds. A prediction the
store cannot record answers ``503 store_unavailable``, never a 200 with an unstored id.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from PIL import Image

from text_recognizer.images import ImageError, pixel_error, shape_error
from text_recognizer.inference.types import Prediction
from text_recognizer.serving.errors import (
    BadBase64,
    BadFeedbackToken,
    InvalidJSON,
    InvalidRequest,
    NotAnImage,
    Overloaded,
    PayloadTooLarge,
    PredictionFailed,
    PredictionTimeout,
    ServingError,
    TooManyPixels,
    UnchangedCorrection,
)
from text_recognizer.serving.fetch import FetchLimits, fetch_image
from text_recognizer.serving.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    PredictRequest,
    PredictResponse,
)
from text_recognizer.serving.security import FeedbackSigner, load_secret
from text_recognizer.serving.settings import ServingSettings
from text_recognizer.serving.store import Store, StoreOptions
from text_recognizer.serving.workers import DeadlineExceeded, WorkerCrashed, WorkerPool

log = logging.getLogger(__name__)

#: how much longer than its deadline a request waits for a worker process that is being killed
KILL_GRACE_S = 2.0

#: Pillow formats accepted from users; others (EPS, PDF, exotic decoders) are refused before decoding.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")


class PredictorLike(Protocol):
    """What serving needs of :class:`text_recognizer.inference.predictor.Predictor`."""

    @property
    def model_version(self) -> str: ...

    def predict(self, image: bytes) -> Prediction: ...


class ServiceObserver(Protocol):
    """Told of each answered prediction and stored flag (``/metrics``: :class:`~.metrics.Metrics`)."""

    def prediction(self, model_version: str, source: str, confidence: float) -> None: ...

    def flag(self, model_version: str, reason: str) -> None: ...


def is_raw_image(content_type: str) -> bool:
    """A ``POST /predict`` body that is the image file itself (``image/*`` or ``application/octet-stream``),
    for the API and the Lambda handler alike. ``content_type`` is the lower-case media type, no parameters."""
    return content_type.startswith("image/") or content_type == "application/octet-stream"


def request_error(errors: Sequence[Mapping[str, Any]]) -> ServingError:
    """Pydantic/FastAPI validation errors -> :class:`InvalidJSON` or :class:`InvalidRequest`."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidJSON("the request body is not valid JSON")
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return InvalidRequest("; ".join(parts) or "invalid request")


def normalise_text(text: str) -> str:
    """A correction or prediction as compared and stored: ``\\r\\n`` line ends as ``\\n``, outer whitespace
    stripped."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def decode_base64_image(value: str, max_bytes: int) -> bytes:
    """Plain base64 (standard or URL-safe alphabet, padding optional) or a ``data:...;base64,`` URL -> bytes.

    Raises:
        BadBase64: not base64, empty, or a data URL that is not base64-encoded.
        PayloadTooLarge: more than ``max_bytes`` once decoded.
    """
    payload = value
    if value[:5].lower() == "data:":
        header, sep, payload = value.partition(",")
        if not sep:
            raise BadBase64("data URL has no ',' before its data")
        if not header.lower().endswith(";base64"):
            raise BadBase64("data URL must be base64-encoded ('data:image/png;base64,...')")
    payload = "".join(payload.split())
    if not payload:
        raise BadBase64("'image' is empty")
    if len(payload) // 4 * 3 > max_bytes:
        raise PayloadTooLarge(f"image is about {len(payload) // 4 * 3} bytes; the limit is {max_bytes} bytes")
    payload = payload.replace("-", "+").replace("_", "/")
    payload += "=" * (-len(payload) % 4)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadBase64(f"'image' is not valid base64 ({e})") from e
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"image is {len(data)} bytes; the limit is {max_bytes} bytes")
    if not data:
        raise BadBase64("'image' decodes to nothing")
    return data


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Read the header only: the format must be one of :data:`IMAGE_FORMATS`, ``width * height`` at most
    ``max_pixels`` and the shape one that can hold handwriting (:func:`~text_recognizer.images.shape_error`).
    Returns ``(width, height)``.

    Raises:
        NotAnImage, TooManyPixels.
    """
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as img:
            width, height = img.size
    except Image.DecompressionBombError as e:  # past Pillow's own, larger limit: name ours only
        size = re.search(r"\((\d+) pixels\)", str(e))
        count = f"{size.group(1)} pixels" if size else "too many pixels"
        raise TooManyPixels(f"image is {count}, which exceeds the limit of {max_pixels}") from e
    except Exception as e:
        raise NotAnImage(
            f"not a readable image; send PNG, JPEG, GIF, BMP, TIFF or WebP ({type(e).__name__})"
        ) from e
    too_big = pixel_error(width, height, max_pixels)
    if too_big:
        raise TooManyPixels(f"image is {too_big}")
    bad_shape = shape_error(width, height)
    if bad_shape:
        raise NotAnImage(bad_shape)
    return width, height


class RecognitionService:
    """The whole serving pipeline around one predictor and one store. Thread-safe."""

    def __init__(
        self,
        predictor: PredictorLike,
        store: Store,
        settings: ServingSettings,
        observer: ServiceObserver | None = None,
    ) -> None:
        self.predictor = predictor
        self.observer = observer
        self.store = store
        self.settings = settings
        self._executor = ThreadPoolExecutor(
            max_workers=settings.max_concurrency, thread_name_prefix="predict"
        )
        self._slots = threading.BoundedSemaphore(settings.max_concurrency + settings.max_queue)
        self.signer = FeedbackSigner(load_secret(settings.secret, store.url))

    @property
    def model_version(self) -> str:
        return self.predictor.model_version

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if isinstance(self.predictor, WorkerPool):
            self.predictor.close()
        self.store.close()

    def image_bytes(self, request: PredictRequest) -> bytes:
        """The image file of a request: decoded from ``image`` or downloaded from ``image_url``."""
        s = self.settings
        if request.image is not None:
            return decode_base64_image(request.image, s.max_image_bytes)
        assert request.image_url is not None  # PredictRequest guarantees exactly one
        limits = FetchLimits(s.max_image_bytes, s.fetch_timeout_s, s.allow_private_urls, s.max_redirects)
        return fetch_image(request.image_url, limits)

    def predict_request(self, request: PredictRequest, source: str = "json") -> PredictResponse:
        started = time.perf_counter()
        data = self.image_bytes(request)
        return self.predict_bytes(data, "url" if request.image_url is not None else source, started)

    def predict_bytes(self, data: bytes, source: str, started: float | None = None) -> PredictResponse:
        """Read one image file and record it; ``started`` (perf_counter) counts earlier work in latency."""
        started = time.perf_counter() if started is None else started
        if len(data) > self.settings.max_image_bytes:
            raise PayloadTooLarge(
                f"image is {len(data)} bytes; the limit is {self.settings.max_image_bytes} bytes"
            )
        check_image(data, self.settings.max_pixels)
        pred = self._run_model(data)
        latency_ms = (time.perf_counter() - started) * 1000.0
        pid = self.store.record_prediction(data, pred, latency_ms, source)  # StoreUnavailable: a 503
        if self.observer is not None:
            self.observer.prediction(pred.model_version, source, pred.confidence)
        return PredictResponse.build(pred, latency_ms, pid, self.signer.token(pid))

    def _run_model(self, data: bytes) -> Prediction:
        timeout = self.settings.predict_timeout_s
        if not self._slots.acquire(blocking=False):
            raise Overloaded("the server is busy; retry in a moment")
        try:
            if isinstance(self.predictor, WorkerPool):  # the pool itself stops the work at the deadline
                deadline = time.monotonic() + timeout
                future: Future[Prediction] = self._executor.submit(self.predictor.predict, data, deadline)
                wait = timeout + KILL_GRACE_S
            else:
                future = self._executor.submit(self.predictor.predict, data)
                wait = timeout
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=wait)
        except (FutureTimeout, DeadlineExceeded) as e:
            future.cancel()
            raise PredictionTimeout(
                f"the prediction took longer than {timeout:g} s and was stopped; the server may be "
                "busy, or send a smaller image cropped to the text"
            ) from e
        except WorkerCrashed as e:
            raise PredictionFailed("the prediction stopped unexpectedly; retry in a moment") from e
        except CancelledError as e:
            raise Overloaded("the server is shutting down; retry in a moment") from e
        except ImageError as e:
            raise NotAnImage(str(e)) from e

    def feedback(self, request: FeedbackRequest) -> FeedbackResponse:
        """Store a flag. The token must be the one the prediction's answer carried (checked first, so a
        wrong token says nothing about whether the id exists). A correction equal to the predicted text (both
        normalised by :func:`normalise_text`) is refused: exported, it would teach the model its own mistakes.

        Raises:
            BadFeedbackToken: the token does not match the prediction id.
            UnknownPrediction: no prediction has this id.
            UnchangedCorrection: ``correct_text`` is the prediction's own text.
        """
        if not self.signer.check(request.prediction_id, request.feedback_token):
            raise BadFeedbackToken(
                "feedback needs the 'feedback_token' that came with this prediction_id in the /predict answer"
            )
        text = normalise_text(request.correct_text) if request.correct_text is not None else None
        if text and text == normalise_text(self.store.prediction_text(request.prediction_id)):
            raise UnchangedCorrection(
                "the correction is the same as the predicted text; edit it to what the image really says "
                "(or send no correct_text to flag the prediction without one)"
            )
        fid = self.store.record_feedback(request.prediction_id, text or None, request.reason)
        if self.observer is not None:  # the serving model's version: flags come soon after predictions
            self.observer.flag(self.model_version, request.reason)
        return FeedbackResponse(feedback_id=fid, prediction_id=request.prediction_id)

    def health(self) -> HealthResponse:
        """``status`` ok when the store can be written (the model is loaded once this service exists)."""
        writable = self.store.ping()
        return HealthResponse(
            status="ok" if writable else "degraded",
            model_version=self.model_version,
            store="ok" if writable else "unavailable",
        )


def build_service(settings: ServingSettings) -> RecognitionService:
    """Load the staged model and open the store named by ``settings`` (the slow part of a cold start), for
    a container that serves one request at a time (Lambda): the store keeps one connection, reused. The
    model runs in-process (no worker pool): Lambda's own function timeout stops a runaway invocation."""
    from text_recognizer.inference.predictor import load_predictor

    predictor = load_predictor(settings.model)
    store = Store(settings.db, StoreOptions.from_settings(settings, single_connection=True))
    return RecognitionService(predictor, store, settings)

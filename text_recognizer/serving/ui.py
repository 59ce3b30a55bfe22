"""The web page (Gradio): upload, paste or photograph handwriting, read the text, flag a wrong answer.

It runs inside the API process (:func:`mount_ui`, calling the service directly) or on its own against a remote
API (:func:`run_standalone`, over HTTP). Both go through a :class:`UIBackend`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from PIL import Image, ImageDraw, ImageOps

from text_recognizer.serving.errors import ServingError
from text_recognizer.serving.schemas import FeedbackRequest, FeedbackResponse, PredictResponse

if TYPE_CHECKING:
    import gradio as gr
    from fastapi import FastAPI

    from text_recognizer.serving.core import RecognitionService

#: Synthetic examples, never IAM: ``text-recognizer synth --split test --kind line --count 4 --seed 11``
#: (lines 1-3 are its images 1, 2, 0) and ``--kind paragraph --count 3 --seed 12`` (paragraphs: images 0, 2).
EXAMPLES_DIR = Path(__file__).parent / "examples"
#: Labels of :data:`~text_recognizer.serving.schemas.FlagReason` values on the page.
REASON_LABELS: dict[str, str] = {
    "wrong_text": "Some words are wrong",
    "missing_text": "Text is missing",
    "extra_text": "Text that is not there",
    "not_handwriting": "Not handwriting",
    "other": "Something else",
}


#: words read with a lower confidence are drawn in red on the image and underlined in the text; the
#: confidence is the expected share of correct characters, so below this about one character in three or
#: more is wrong
UNSURE_WORD = 0.7
LINE_COLOUR, WORD_COLOUR, UNSURE_COLOUR = (46, 160, 67), (31, 111, 235), (220, 38, 38)


class UIBackend(Protocol):
    def predict(self, image: bytes) -> PredictResponse: ...

    def feedback(self, request: FeedbackRequest) -> FeedbackResponse: ...


class LocalBackend:
    """Calls the in-process service (looked up on each call: it is created in the app's lifespan)."""

    def __init__(self, service: Callable[[], RecognitionService]) -> None:
        self._service = service

    def predict(self, image: bytes) -> PredictResponse:
        return self._service().predict_bytes(image, "ui")

    def feedback(self, request: FeedbackRequest) -> FeedbackResponse:
        return self._service().feedback(request)


class RemoteError(ServingError):
    """An error answer from the remote API, with its code and message."""


class RemoteBackend:
    """Calls a remote text-recognizer API over HTTP (``POST /predict/upload`` and ``POST /feedback``)."""

    def __init__(
        self,
        api_url: str,
        client: httpx.Client | None = None,
        timeout_s: float = 60.0,
        api_key: str | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        headers = {"X-API-Key": api_key} if api_key else {}
        self.client = client or httpx.Client(timeout=timeout_s, headers=headers)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.client.request(method, f"{self.api_url}{path}", **kwargs)
        except httpx.HTTPError as e:
            raise RemoteError(f"the API at {self.api_url} cannot be reached ({type(e).__name__})") from e
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 or not isinstance(body, dict):
            err = body.get("error", {}) if isinstance(body, dict) else {}
            message = err.get("message") if isinstance(err, dict) else None
            raise RemoteError(message or f"the API answered HTTP {response.status_code}")
        return body

    def predict(self, image: bytes) -> PredictResponse:
        body = self._call(
            "POST", "/predict/upload", files={"file": ("image", image, "application/octet-stream")}
        )
        return PredictResponse.model_validate(body)

    def feedback(self, request: FeedbackRequest) -> FeedbackResponse:
        return FeedbackResponse.model_validate(self._call("POST", "/feedback", json=request.model_dump()))


def upload_folder() -> Path:
    """Gradio's upload cache (``GRADIO_TEMP_DIR`` or ``<tmp>/gradio``), where every file the page reads is."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def read_upload(path: str) -> bytes:
    """The bytes of a file the page received, refusing any path outside Gradio's upload cache (a client can
    name a server path in an API call; Gradio checks it too, this is the second lock).

    Raises:
        ServingError: the path is outside the cache or cannot be read (the message names no server path).
    """
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(upload_folder()) or not resolved.is_file():
        raise ServingError("that file was not uploaded to this page; upload the image again")
    return resolved.read_bytes()


def annotate(image: bytes, result: PredictResponse) -> Image.Image:
    """The image (EXIF-rotated, RGB) with each line's box in green, each word's in blue, and the words
    below :data:`UNSURE_WORD` in red (boxes in the API's ``[x_min, y_min, x_max, y_max]`` pixels)."""
    opened = Image.open(io.BytesIO(image))
    img = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
    draw = ImageDraw.Draw(img)
    width = max(1, round(max(img.size) / 400))
    for line in result.lines:
        x0, y0, x1, y1 = line.box
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=LINE_COLOUR, width=width)
        for word in line.words:
            if word.box is None:
                continue
            x0, y0, x1, y1 = word.box
            unsure = word.confidence < UNSURE_WORD
            colour = UNSURE_COLOUR if unsure else WORD_COLOUR
            pad = width + 1
            box = (x0 + 1, y0 + pad, max(x0 + 1, x1 - 2), max(y0 + pad, y1 - 1 - pad))
            draw.rectangle(box, outline=colour, width=2 * width if unsure else width)
    return img


def marked_text(result: PredictResponse) -> str:
    """Markdown of the lines with each word below :data:`UNSURE_WORD` underlined and its confidence."""
    out = []
    for line in result.lines:
        words = [
            f"<u>{w.text}</u> ({w.confidence:.0%})" if w.confidence < UNSURE_WORD else w.text
            for w in line.words
        ]
        out.append(f"- {line.confidence:.0%}: " + (" ".join(words) if words else line.text))
    return "\n".join(out)


def example_images() -> list[Path]:
    """The example PNGs shipped with the package (rendered by the synthetic engine, never IAM)."""
    return sorted(EXAMPLES_DIR.glob("*.png")) if EXAMPLES_DIR.is_dir() else []


class UIHandlers:
    """The page's event handlers, plain functions of plain values (tested without a browser).

    ``predict`` returns ``(text, info markdown, ticket, correction box prefill, flag status, the image with
    its boxes drawn)``; the ticket
    ``(prediction id, feedback token)`` stays in the page's session state and goes back with a flag.
    """

    def __init__(self, backend: UIBackend) -> None:
        self.backend = backend

    def predict(
        self, path: str | None
    ) -> tuple[str, str, tuple[str, str] | None, str, str, Image.Image | None]:
        import gradio as gr

        if not path:
            return "", "", None, "", "", None
        try:
            data = read_upload(path)
            result = self.backend.predict(data)
        except ServingError as e:
            raise gr.Error(e.message) from e
        info = (
            f"**Confidence {result.confidence:.0%}** · {len(result.lines)} line(s) · "
            f"model `{result.model_version}` · {result.latency_ms:.0f} ms"
        )
        if result.lines:
            info += f"\n\nWords below {UNSURE_WORD:.0%} are underlined (red on the image):\n" + marked_text(
                result
            )
        ticket = (result.prediction_id, result.feedback_token)
        return result.pred, info, ticket, result.pred, "", annotate(data, result)

    def flag(self, ticket: tuple[str, str] | None, correct_text: str, reason: str) -> str:
        import gradio as gr

        if not ticket:
            raise gr.Error("Read an image first, then flag its text.")
        prediction_id, token = ticket
        try:
            request = FeedbackRequest(
                prediction_id=prediction_id,
                correct_text=correct_text,
                reason=reason,  # type: ignore[arg-type]
                feedback_token=token,
            )
            saved = self.backend.feedback(request)
        except ServingError as e:
            raise gr.Error(e.message) from e
        except ValueError as e:
            raise gr.Error(f"Could not send the flag: {e}") from e
        return f"Thanks! Saved as feedback #{saved.feedback_id}; corrections help train the next model."


def build_ui(backend: UIBackend) -> gr.Blocks:
    """The page. Element ids (``input-image``, ``pred-boxes``, ``pred-text``, ``pred-info``,
    ``correct-text``, ``flag-button``, ``flag-status``) are stable for the browser tests."""
    import gradio as gr

    handlers = UIHandlers(backend)
    with gr.Blocks(title="text-recognizer", analytics_enabled=False) as page:
        gr.Markdown(
            "# Handwritten text recognizer\n"
            "Upload, paste or photograph a line or a page of handwriting. The API is at [/docs](/docs)."
        )
        ticket = gr.State(None)
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    sources=["upload", "clipboard", "webcam"],
                    type="filepath",
                    image_mode=None,  # the file as uploaded: stored by its hash, decoded by the predictor
                    label="Handwriting",
                    elem_id="input-image",
                )
                boxes = gr.Image(
                    type="pil",
                    interactive=False,
                    label=f"Lines (green), words (blue), words below {UNSURE_WORD:.0%} confidence (red)",
                    elem_id="pred-boxes",
                )
                examples = example_images()
                if examples:
                    gr.Examples([[str(p)] for p in examples], inputs=[image], label="Examples (synthetic)")
            with gr.Column():
                text = gr.Textbox(label="Text", lines=6, interactive=False, elem_id="pred-text")
                info = gr.Markdown(elem_id="pred-info")
                with gr.Group():
                    correct = gr.Textbox(
                        label="Wrong? Type the correct text",
                        lines=3,
                        interactive=True,
                        elem_id="correct-text",
                    )
                    reason = gr.Dropdown(
                        choices=[(label, key) for key, label in REASON_LABELS.items()],
                        value="wrong_text",
                        label="What is wrong",
                    )
                    flag = gr.Button("Flag as wrong", variant="secondary", elem_id="flag-button")
                status = gr.Markdown(elem_id="flag-status")
        image.change(
            handlers.predict,
            inputs=[image],
            outputs=[text, info, ticket, correct, status, boxes],
            concurrency_limit=None,
        )
        flag.click(handlers.flag, inputs=[ticket, correct, reason], outputs=[status], concurrency_limit=None)
    return page


def mount_ui(
    app: FastAPI,
    backend: UIBackend,
    max_file_size: int | None = None,
    blocked_paths: Sequence[Path] = (),
    auth: Callable[[str, str], bool] | None = None,
) -> None:
    """Mount the page at ``/`` of ``app``; routes declared before keep precedence.

    File access: Gradio checks that a file named in an event is in its upload cache only once the page has
    "launched", which a mounted page never does by itself, so it is marked launched here; ``blocked_paths``
    (the data folder, the database's folder) are refused even inside the cache. Errors other than the page's
    own messages are not shown to clients (they name server paths). ``auth(user, password)``, when given,
    puts the page behind Gradio's login form.
    """
    import gradio as gr

    page = build_ui(backend)
    gr.mount_gradio_app(
        app,
        page,
        path="/",
        ssr_mode=False,
        max_file_size=max_file_size,
        blocked_paths=[str(p) for p in _blockable(blocked_paths)],
        show_error=False,
        auth=auth,
    )
    page.has_launched = True


def _blockable(paths: Sequence[Path]) -> list[Path]:
    """``paths`` resolved, less any that holds the upload cache (blocking it would refuse every upload)."""
    cache = upload_folder()
    return [p.resolve() for p in paths if not cache.is_relative_to(p.resolve())]


def run_standalone(api_url: str, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page alone, sending images to the API at ``api_url`` (with ``TEXT_RECOGNIZER_API_KEY``, if
    set, both as the key it sends and as the page's login)."""
    from text_recognizer.serving.security import page_auth
    from text_recognizer.serving.settings import ServingSettings

    settings = ServingSettings.from_env()
    page = build_ui(RemoteBackend(api_url, api_key=settings.api_key))
    print(f"text-recognizer page: http://{host}:{port}/ using the API at {api_url}")
    page.queue().launch(
        server_name=host, server_port=port, ssr_mode=False, show_error=False, auth=page_auth(settings.api_key)
    )

"""Request and response models of the JSON API (and of the Lambda handler, which shares them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from text_recognizer.inference.types import Prediction

#: Why a user flagged a prediction; "wrong_text" is what the web page sends with a correction.
FlagReason = Literal["wrong_text", "missing_text", "extra_text", "not_handwriting", "other"]
PREDICTION_ID_PATTERN = r"^[0-9a-f]{32}$"


class PredictRequest(BaseModel):
    """Exactly one of ``image`` (inline) or ``image_url`` (downloaded by the server)."""

    image: str | None = Field(
        default=None,
        description="The image file (PNG, JPEG, GIF, BMP, TIFF or WebP) as base64, or as a data URL "
        "('data:image/png;base64,...').",
    )
    image_url: str | None = Field(
        default=None,
        max_length=2048,
        description="An http(s) URL of the image. Private, loopback and link-local addresses are refused.",
        examples=["https://example.com/note.png"],
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.image is None) == (self.image_url is None):
            raise ValueError("give exactly one of 'image' (base64 or data URL) or 'image_url'")
        return self


BOX_DESCRIPTION = (
    "[x_min, y_min, x_max, y_max]: absolute pixels of the input image after its EXIF rotation, max exclusive."
)
CONFIDENCE_DESCRIPTION = (
    "Expected share of correct characters, 0..1 (calibrated at staging on synthetic lines; the geometric "
    "mean of the character probabilities for a model staged without calibration)."
)


class WordOut(BaseModel):
    text: str
    confidence: float = Field(description=CONFIDENCE_DESCRIPTION)
    box: tuple[int, int, int, int] | None = Field(
        description=BOX_DESCRIPTION
        + " From the CTC alignment; null with the attention decoder (no alignment)."
    )


class LineOut(BaseModel):
    text: str
    confidence: float = Field(description=CONFIDENCE_DESCRIPTION)
    box: tuple[int, int, int, int] = Field(description=BOX_DESCRIPTION + " The line's ink.")
    words: list[WordOut] = Field(default_factory=list, description="The line's words, left to right.")


class PredictResponse(BaseModel):
    pred: str = Field(description="The recognised text; lines joined by '\\n'.")
    confidence: float = Field(
        description="Line confidences weighted by their characters, 0..1 (0 when nothing was read). Lines "
        "read below the predictor's minimum line confidence (specks, paper texture) are left out."
    )
    lines: list[LineOut]
    model_version: str
    latency_ms: float = Field(description="Server time for this request, decoding and download included.")
    prediction_id: str = Field(description="Pass it to POST /feedback to flag or correct this prediction.")
    feedback_token: str = Field(description="Pass it to POST /feedback with `prediction_id`.")

    @classmethod
    def build(
        cls, pred: Prediction, latency_ms: float, prediction_id: str, feedback_token: str
    ) -> PredictResponse:
        return cls(
            pred=pred.text,
            confidence=pred.confidence,
            lines=[
                LineOut(
                    text=ln.text,
                    confidence=ln.confidence,
                    box=ln.box,
                    words=[WordOut(text=w.text, confidence=w.confidence, box=w.box) for w in ln.words],
                )
                for ln in pred.lines
            ],
            model_version=pred.model_version,
            latency_ms=latency_ms,
            prediction_id=prediction_id,
            feedback_token=feedback_token,
        )


class FeedbackRequest(BaseModel):
    prediction_id: str = Field(pattern=PREDICTION_ID_PATTERN, description="From a /predict response.")
    correct_text: str | None = Field(
        default=None, max_length=10_000, description="What the image really says; lines joined by '\\n'."
    )
    reason: FlagReason = "wrong_text"
    feedback_token: str | None = Field(
        default=None, max_length=128, description="From the same /predict response; required (403 without)."
    )


class FeedbackResponse(BaseModel):
    feedback_id: int
    prediction_id: str


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="'degraded' (HTTP 503) when the store is unavailable."
    )
    model_version: str
    store: Literal["ok", "unavailable"]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. 'too_many_pixels'.")
    message: str = Field(description="What went wrong and what to change.")


class ErrorResponse(BaseModel):
    error: ErrorDetail

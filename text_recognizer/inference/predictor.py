"""Image -> text with a staged artifact: preprocessing + model + postprocessing, named parts, one factory.

Imports numpy, Pillow and onnxruntime only (never torch or Lightning):

    from text_recognizer.inference.predictor import load_predictor
    pred = load_predictor().predict("page.jpg")
    print(pred.text, pred.confidence)

Like docTR's ``RecognitionPredictor(PreProcessor(...), model)``, a :class:`Predictor` is its parts:
:class:`PreProcessor` (decode, normalise, cut into lines: :func:`text_recognizer.images.page_lines`), the ONNX
:class:`~text_recognizer.inference.runtime.OnnxModel`, a
:class:`~text_recognizer.inference.decoders.LineReader` (batching and the decoding method) and
:class:`PostProcessor` (token ids -> text and confidence). Every setting comes from the artifact's
:class:`~text_recognizer.inference.manifest.Manifest`; a single line is just a page with one line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from text_recognizer.images import ImageError, ImageSource, LineBox, image_stats, load_gray, page_lines
from text_recognizer.inference.beam_search import BeamConfig
from text_recognizer.inference.char_lm import CharNgramLM
from text_recognizer.inference.decoders import (
    BATCH_SIZE,
    Decoded,
    LineDecoder,
    LineReader,
    available_decoders,
    line_confidence,
)
from text_recognizer.inference.manifest import LM_FILE, ArtifactError, Calibration, Manifest, Preprocessing
from text_recognizer.inference.runtime import OnnxModel
from text_recognizer.inference.types import Box, LineResult, Prediction, WordResult
from text_recognizer.paths import default_artifact
from text_recognizer.vocab import Vocabulary

#: lines whose (calibrated) confidence is below this are left out of a prediction. 0: every line is kept and
#: a low confidence marks it (the page draws such words red). Measured with the 2026-12-02 model, a floor of
#: 0.1 left out real lines: real paragraphs 0.185 -> 0.255 (2x: 0.209 -> 0.312), synthetic test lines
#: 0.148 -> 0.175; blank pages come back with a low page confidence without it (benchmarks.confidence)
MIN_LINE_CONFIDENCE = 0.0


@dataclass(frozen=True)
class Page:
    """A decoded image: grey ``[H, W]`` uint8, its line boxes, their prepared crops ``[height, w]`` and the
    columns ``[x0, x1)`` of ``gray`` each crop spans."""

    gray: np.ndarray
    boxes: list[LineBox]
    lines: list[np.ndarray]
    spans: list[tuple[float, float]]


@dataclass(frozen=True)
class PreProcessor:
    """Image -> :class:`Page`: grey, ink normalised, cut into lines ``[height, w <= max_width]``."""

    height: int
    max_width: int

    @classmethod
    def from_manifest(cls, pre: Preprocessing) -> PreProcessor:
        return cls(pre.input_height, pre.max_width)

    def __call__(self, image: ImageSource, name: str | None = None) -> Page:
        gray = load_gray(image, name=name)
        found = page_lines(gray, self.height, self.max_width)
        return Page(gray, found.boxes, found.crops, found.spans)


def line_box(box: LineBox) -> Box:
    """A :class:`LineBox` in the :data:`~text_recognizer.inference.types.Box` convention."""
    return (box.left, box.top, box.right, box.bottom)


@dataclass(frozen=True)
class PostProcessor:
    """A decoded line -> :class:`LineResult`: text, (calibrated) confidence, box and words.

    Word boxes map the CTC alignment's columns of the model input back to the input image: the crop spans
    the input's columns ``[x0, x1)`` (``span``: the line box's, and a lone line's margin), resized to the
    crop's width (``x = x0 + column * (x1 - x0) / crop width``), and are clipped to the line box.
    """

    vocab: Vocabulary
    #: applied to every confidence when set (:class:`~text_recognizer.inference.manifest.Calibration`)
    calibration: Calibration | None = None

    def confidence(self, probs: Sequence[float]) -> float:
        raw = line_confidence(list(probs))
        return self.calibration(raw) if self.calibration is not None and probs else raw

    def __call__(
        self,
        decoded: Decoded,
        box: LineBox | None = None,
        crop_width: int = 0,
        span: tuple[float, float] | None = None,
    ) -> LineResult:
        text = self.vocab.decode_line(decoded.ids)
        if box is None:
            box = LineBox(0, 0, 0, 0)
        x0, x1 = span if span is not None else (box.left, box.right)
        scale = (x1 - x0) / crop_width if crop_width else 0.0
        aligned = len(decoded.spans) == len(decoded.ids) and scale > 0
        # word = run of tokens that are not white space: (first token, end token)
        words: list[tuple[int, int]] = []
        start = None
        for i, k in enumerate([*decoded.ids, -1]):
            blank = k < 0 or not self.vocab.decode([k]).strip()
            if blank and start is not None:
                words.append((start, i))
                start = None
            elif not blank and start is None:
                start = i
        starts = [x0 for x0, _ in decoded.spans]
        pitch = float(np.median(np.diff(starts))) if len(starts) > 1 else 0.0
        out = []
        for a, b in words:
            wbox: Box | None = None
            if aligned:
                left = int(x0 + (decoded.spans[a][0] - pitch / 2) * scale)
                right = int(np.ceil(x0 + (decoded.spans[b - 1][1] + pitch / 2) * scale))
                left, right = max(box.left, min(left, box.right - 1)), min(box.right, right)
                wbox = (left, box.top, max(right, left + 1), box.bottom)
            word = self.vocab.decode(decoded.ids[a:b])
            out.append(WordResult(word, self.confidence(decoded.probs[a:b]), wbox))
        return LineResult(text, self.confidence(decoded.probs), line_box(box), out)


@dataclass(frozen=True)
class Predictor:
    """A loaded artifact. Thread-safe: onnxruntime sessions may be shared by concurrent requests."""

    preprocessor: PreProcessor
    model: OnnxModel
    reader: LineReader
    postprocessor: PostProcessor
    model_version: str
    #: the decoders this artifact can run
    decoders: tuple[str, ...]
    #: fit with one decoder: applied with that one only (:meth:`postprocess`)
    calibration: Calibration | None = None
    min_line_confidence: float = MIN_LINE_CONFIDENCE

    @classmethod
    def from_manifest(
        cls,
        manifest: Manifest,
        folder: Path,
        decoder: str | None = None,
        batch_size: int = BATCH_SIZE,
        threads: int = 0,
        model: OnnxModel | None = None,
        lm: CharNgramLM | None = None,
    ) -> Predictor:
        """The predictor of ``manifest`` over the files in ``folder`` (already verified).

        ``decoder`` overrides the manifest's default; ``model`` and ``lm`` reuse sessions and a language
        model already loaded (staging measures each decoder with one of each).

        Raises:
            ArtifactError: the files cannot be loaded, or the decoder asked for is not available.
        """
        model = model or OnnxModel.load(folder, manifest.model, threads=threads)
        if lm is None and manifest.has_lm:
            try:
                lm = CharNgramLM.load(folder / LM_FILE)
            except Exception as e:
                raise ArtifactError(f"{folder / LM_FILE}: cannot load the language model ({e})") from e
        decoders = tuple(available_decoders(model, lm))
        method = decoder or manifest.decoding.default
        if method not in decoders:
            raise ArtifactError(
                f"{folder}: decoder {method!r} asked for, but this artifact has only {', '.join(decoders)}"
            )
        chars = tuple(c if len(c) == 1 else "\x00" for c in manifest.vocab)
        line_decoder = LineDecoder(method, lm=lm, beam=manifest.decoding.beam, chars=chars)
        pre = manifest.preprocessing
        return cls(
            preprocessor=PreProcessor.from_manifest(pre),
            model=model,
            reader=LineReader(line_decoder, pre.max_width, batch_size, pre.pad_width_multiple),
            postprocessor=PostProcessor(Vocabulary.from_list(manifest.vocab)),
            model_version=manifest.version,
            decoders=decoders,
            calibration=manifest.calibration,
        )

    @property
    def decoder(self) -> str:
        """The decoding method in use."""
        return self.reader.decoder.method

    def with_decoding(self, method: str | None = None, beam: BeamConfig | None = None) -> Predictor:
        """The same parts with another decoding method or beam search weights (sessions shared)."""
        d = self.reader.decoder
        if method is not None and method not in self.decoders:
            raise ArtifactError(f"decoder {method!r} asked for, but this artifact has only {self.decoders}")
        new = dataclasses.replace(d, method=method or d.method, beam=beam or d.beam)
        return dataclasses.replace(self, reader=dataclasses.replace(self.reader, decoder=new))

    def with_batch_size(self, batch_size: int) -> Predictor:
        return dataclasses.replace(self, reader=dataclasses.replace(self.reader, batch_size=batch_size))

    # ----------------------------------------------------------------------------------- public API

    def predict(self, image: ImageSource, name: str | None = None) -> Prediction:
        """Read a line or a paragraph; lines below ``min_line_confidence`` are left out.

        Raises:
            text_recognizer.images.ImageError: the image cannot be decoded or is too large.
        """
        t0 = time.perf_counter()
        page = self.preprocessor(image, name=name)
        read = self.read_lines(page)
        lines = [ln for ln in read if ln.confidence >= self.min_line_confidence and ln.text]
        chars = [len(ln.text) for ln in lines]
        return Prediction(
            text="\n".join(line.text for line in lines),
            confidence=float(np.average([ln.confidence for ln in lines], weights=chars)) if lines else 0.0,
            lines=lines,
            model_version=self.model_version,
            seconds=time.perf_counter() - t0,
            image_stats=image_stats(page.gray),
        )

    @property
    def postprocess(self) -> PostProcessor:
        """The post-processor, with the calibration when it was fit with the decoder in use."""
        c = self.calibration
        use = c is not None and c.decoder in ("", self.decoder)
        return dataclasses.replace(self.postprocessor, calibration=c if use else None)

    def read_lines(self, page: Page) -> list[LineResult]:
        """Every line of ``page``, none left out."""
        post = self.postprocess
        decoded = self.reader(self.model, list(page.lines))
        return [
            post(d, b, crop.shape[1], span)
            for d, b, crop, span in zip(decoded, page.boxes, page.lines, page.spans, strict=True)
        ]

    def recognize(self, lines: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Prepared line images (float32 ``[height, w]``) -> (text, confidence) each, in input order."""
        post = self.postprocess
        return [(r.text, r.confidence) for r in map(post, self.reader(self.model, list(lines)))]


def load_predictor(
    path: Path | None = None, batch_size: int = BATCH_SIZE, threads: int = 0, decoder: str | None = None
) -> Predictor:
    """The one factory: an artifact folder (default: the shipped model) -> :class:`Predictor`.

    ``decoder`` (``attention``, ``ctc`` or ``ctc_lm``) overrides the artifact's default, as does the
    environment variable ``TEXT_RECOGNIZER_DECODER``.

    Raises:
        ArtifactError: no manifest, a corrupt file, or a decoder the artifact does not offer.
    """
    folder = Path(path) if path else default_artifact()
    decoder = decoder or os.environ.get("TEXT_RECOGNIZER_DECODER") or None
    manifest = Manifest.read(folder)
    return Predictor.from_manifest(manifest, folder, decoder=decoder, batch_size=batch_size, threads=threads)


def predict_files(images: Sequence[Path], model: Path | None = None, as_json: bool = False) -> None:
    """The ``predict`` command: print the text of each image (or one JSON object per image). Every file is
    read; unreadable ones are reported on stderr as they come, then :class:`ImageError` names how many."""
    predictor = load_predictor(model)
    failed = 0
    for path in images:
        try:
            pred = predictor.predict(path, name=str(path))
        except ImageError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
            continue
        if as_json:
            d = pred.to_dict()
            d["image"] = str(path)
            print(json.dumps(d))
        else:
            if len(images) > 1:
                print(f"==> {path} (confidence {pred.confidence:.2f})")
            print(pred.text)
    if failed:
        raise ImageError(f"{failed} of {len(images)} image(s) could not be read")


__all__ = ["Prediction", "Predictor", "load_predictor", "predict_files"]

"""Image -> text with a staged artifact: preprocessing + ONNX model + postprocessing, behind one factory.

Imports numpy, Pillow and onnxruntime only (never torch or Lightning):

    from text_recognizer.predictor import load_predictor
    pred = load_predictor().predict("page.jpg")
    print(pred.text, pred.confidence)

Paragraphs are cut into lines (:func:`text_recognizer.images.segment_lines`) and the lines are read in
batches by the line model; a single line is just a page with one line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from text_recognizer.artifact import ArtifactError, OnnxModel, line_confidence, read_lines, read_manifest
from text_recognizer.images import (
    ImageError,
    ImageSource,
    image_stats,
    load_gray,
    page_lines,
)
from text_recognizer.paths import default_artifact
from text_recognizer.predictor_types import LineResult, Prediction
from text_recognizer.vocab import Vocabulary


class Predictor:
    """A loaded artifact. Thread-safe: onnxruntime sessions may be shared by concurrent requests."""

    def __init__(
        self, folder: Path, batch_size: int = 16, threads: int = 0, decoder: str | None = None
    ) -> None:
        self.folder = folder
        self.manifest = read_manifest(folder)
        self.vocab = Vocabulary.from_list(self.manifest["vocab"])
        pre = self.manifest["preprocessing"]
        self.height, self.max_width = int(pre["input_height"]), int(pre["max_width"])
        self.pad_multiple = int(pre.get("pad_width_multiple", 8))
        self.model = OnnxModel.load(folder, self.manifest, threads=threads)
        self.batch_size = batch_size
        self.model_version = str(self.manifest.get("version", folder.name))
        # the decoder staging measured best on synthetic validation lines, unless one is asked for
        self.decoder = decoder or self.manifest.get("decoding", {}).get("default", "attention")
        if self.decoder not in self.model.decoders:
            raise ArtifactError(
                f"{folder}: decoder {self.decoder!r} asked for, but this artifact has only "
                f"{', '.join(self.model.decoders)}"
            )

    # ----------------------------------------------------------------------------------- public API

    def predict(self, image: ImageSource, name: str | None = None) -> Prediction:
        """Read a line or a paragraph.

        Raises:
            text_recognizer.images.ImageError: the image cannot be decoded or is too large.
        """
        t0 = time.perf_counter()
        gray = load_gray(image, name=name)
        boxes, crops = page_lines(gray, self.height, self.max_width)
        read = self.recognize(crops)
        lines = [
            LineResult(text=t, confidence=c, box=(b.top, b.bottom, b.left, b.right))
            for (t, c), b in zip(read, boxes, strict=True)
        ]
        return Prediction(
            text="\n".join(line.text for line in lines),
            confidence=float(np.mean([line.confidence for line in lines])) if lines else 0.0,
            lines=lines,
            model_version=self.model_version,
            seconds=time.perf_counter() - t0,
            image_stats=image_stats(gray),
        )

    def recognize(self, lines: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Prepared line images (float32 ``[height, w]``) -> (text, confidence) each, in input order.

        Lines of similar width are batched together so little padding is decoded.
        """
        out = []
        decoded = read_lines(
            self.model, list(lines), self.decoder, self.max_width, self.batch_size, self.pad_multiple
        )
        for ids, probs in decoded:
            out.append((self.vocab.decode_line(ids), line_confidence(probs)))
        return out


def load_predictor(
    path: Path | None = None, batch_size: int = 16, threads: int = 0, decoder: str | None = None
) -> Predictor:
    """The one factory: an artifact folder (default: the shipped model) -> :class:`Predictor`.

    ``decoder`` (``attention``, ``ctc`` or ``ctc_lm``) overrides the artifact's default, as does the
    environment variable ``TEXT_RECOGNIZER_DECODER``.
    """
    decoder = decoder or os.environ.get("TEXT_RECOGNIZER_DECODER") or None
    return Predictor(
        Path(path) if path else default_artifact(), batch_size=batch_size, threads=threads, decoder=decoder
    )


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

"""``feedback export``: user corrections -> one line sample per predicted line, in a ``labels.jsonl`` folder.

A page correction is aligned by line count: the image is cut into lines as the predictor cuts it
(:func:`text_recognizer.images.segment_lines` on the ink-normalised page), and the corrected text's non-blank
lines are paired with those boxes top to bottom when the three counts agree (lines the prediction had, lines
the cut gives now, lines of the correction). Otherwise the sample is *unaligned*: it is counted, listed in
``unaligned.jsonl`` with the counts, and not exported (an edit-distance alignment of lines is not done yet).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from text_recognizer.images import load_gray, normalize_ink, segment_lines
from text_recognizer.serving.store import CorrectedSample, Store

UNALIGNED_FILE = "unaligned.jsonl"


@dataclass(frozen=True)
class Unaligned:
    """A correction whose lines could not be paired with the image's lines."""

    prediction_id: str
    predicted_lines: int
    cut_lines: int
    corrected_lines: int


def correction_lines(text: str) -> list[str]:
    """The non-blank lines of a correction, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def line_crops(sample: CorrectedSample) -> tuple[list[bytes], int]:
    """The sample's image cut into lines as the predictor cuts it -> (PNG bytes of each grey crop ``[h, w]``
    top to bottom, number of lines cut)."""
    gray = load_gray(sample.image)
    boxes = segment_lines(normalize_ink(gray))
    crops = []
    for b in boxes:
        buf = io.BytesIO()
        Image.fromarray(gray[b.top : b.bottom, b.left : b.right]).save(buf, "PNG")
        crops.append(buf.getvalue())
    return crops, len(boxes)


def _write(path: Path, data: bytes) -> None:
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)


def export_feedback(out: Path, db: str | None = None) -> tuple[int, list[Unaligned]]:
    """Write the user-corrected samples as line samples in a folder that training reads directly.

    ``out/images/<prediction id>-<line>.png`` holds each line crop, ``out/labels.jsonl`` one
    ``{"image", "text"}`` line each, ``out/unaligned.jsonl`` the corrections left out. Returns
    ``(lines written, unaligned corrections)``.
    """
    from text_recognizer.data.folder import write_labels

    store = Store(db)
    out = Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    entries: list[tuple[str, str]] = []
    unaligned: list[Unaligned] = []
    try:
        for sample in store.corrected_samples():
            texts = correction_lines(sample.text)
            crops, cut = line_crops(sample)
            if not (len(texts) == cut == sample.n_lines):
                unaligned.append(Unaligned(sample.prediction_id, sample.n_lines, cut, len(texts)))
                continue
            for i, (crop, text) in enumerate(zip(crops, texts, strict=True)):
                name = f"images/{sample.prediction_id}-{i:03d}.png"
                _write(out / name, crop)
                entries.append((name, text))
    finally:
        store.close()
    labels = write_labels(out, entries)
    (out / UNALIGNED_FILE).write_text("".join(json.dumps(asdict(u)) + "\n" for u in unaligned))
    print(f"wrote {len(entries)} corrected line sample(s) to {labels}")
    if unaligned:
        print(f"{len(unaligned)} correction(s) left out: lines not aligned ({UNALIGNED_FILE}):")
        for u in unaligned:
            print(
                f"  {u.prediction_id}: predicted {u.predicted_lines} line(s), cut {u.cut_lines}, "
                f"corrected {u.corrected_lines}"
            )
    return len(entries), unaligned

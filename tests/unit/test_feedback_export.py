"""``feedback export``: a page correction becomes one line sample per predicted line, read by the line data
module at the model's input height; corrections whose lines do not match are counted and listed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from sqlalchemy import text as sql

from text_recognizer.data.folder import FolderSource, read_labels
from text_recognizer.data.modules import DataConfig, EncodedDataset
from text_recognizer.inference.types import LineResult, Prediction
from text_recognizer.serving.feedback_export import (
    CONFIRMED_DIR,
    UNALIGNED_FILE,
    align_lines,
    export_feedback,
)
from text_recognizer.serving.store import Store
from text_recognizer.vocab import default_vocab


def page_png(lines: list[str], width: int = 200, pitch: int = 40) -> bytes:
    """Dark text lines on light paper, one every ``pitch`` rows."""
    img = Image.new("L", (width, pitch * len(lines)), "white")
    draw = ImageDraw.Draw(img)
    for i, text in enumerate(lines):
        draw.text((8, i * pitch + pitch // 3), text, fill="black")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def prediction(texts: list[str], pitch: int = 40) -> Prediction:
    lines = [LineResult(t, 0.5, (0, i * pitch, 200, (i + 1) * pitch)) for i, t in enumerate(texts)]
    return Prediction("\n".join(texts), 0.5, lines, "m-1", 0.01, {"width": 200, "height": pitch * len(texts)})


def test_page_correction_exported_as_line_samples(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'monitoring.db'}"
    store = Store(db)
    page = page_png(["first line", "second one", "third"])
    aligned = store.record_prediction(page, prediction(["frst lne", "secnd one", "thrd"]), 1.0, "ui")
    store.record_feedback(aligned, "first line\nsecond one\n\nthird\n", "wrong_text")  # blank lines ignored
    # the user broke the second line in two and added a line that is not in the image; the third line is
    # confirmed correct (left as predicted)
    extra = store.record_prediction(page, prediction(["frst lne", "secnd one", "third"]), 1.0, "ui")
    store.record_feedback(extra, "first line\nsecond\none\nthird\nP.S. nothing here", "wrong_text")
    store.close()
    out = tmp_path / "corrections"
    written, unaligned = export_feedback(out, db, confirmed=True)

    assert written == 5
    assert [(u.prediction_id, u.predicted_lines, u.cut_lines, u.corrected_lines) for u in unaligned] == [
        (extra, 3, 3, 5)
    ]
    assert unaligned[0].left_out == ("corrected: P.S. nothing here",)
    listed = [json.loads(line) for line in (out / UNALIGNED_FILE).read_text().splitlines()]
    assert [u["prediction_id"] for u in listed] == [extra]
    labels = read_labels(out)
    texts = ["first line", "second one", "third", "first line", "second one"]
    assert [e.text for e in labels] == texts
    assert [e.text for e in read_labels(out / CONFIRMED_DIR)] == ["third"]
    source = FolderSource(out)
    assert all(source[i].image.shape[0] <= 40 for i in range(5))  # one 40-row line band, not the 120-row page
    height = DataConfig().height
    ds = EncodedDataset(source, default_vocab(), height, DataConfig().max_width, DataConfig().max_text_len)
    for i in range(5):
        image, ids, text = ds[i]
        assert image.shape[:2] == (1, height) and text == labels[i].text and len(ids) == len(text) + 2


def test_export_cuts_exactly_the_stored_line_boxes(tmp_path: Path) -> None:
    """The predictor read two lines of a three-line page (it left the last out) with boxes no re-cut gives:
    the export writes exactly those two crops, paired with the two corrected lines."""
    db = f"sqlite:///{tmp_path / 'monitoring.db'}"
    store = Store(db)
    page = page_png(["first line", "second one", "third"])
    boxes = [(5, 8, 120, 37), (3, 41, 150, 79)]
    lines = [LineResult(t, 0.5, b) for t, b in zip(["frst lne", "secnd one"], boxes, strict=True)]
    pred = Prediction("frst lne\nsecnd one", 0.5, lines, "m-1", 0.01, {})
    pid = store.record_prediction(page, pred, 1.0, "ui")
    store.record_feedback(pid, "first line\nsecond one", "wrong_text")
    [sample] = store.corrected_samples()
    store.close()
    assert sample.boxes == tuple(boxes)
    written, unaligned = export_feedback(tmp_path / "out", db)
    assert (written, unaligned) == (2, [])
    gray = np.asarray(Image.open(io.BytesIO(page)).convert("L"))
    labels = read_labels(tmp_path / "out")
    assert [e.text for e in labels] == ["first line", "second one"]
    for entry, (x0, y0, x1, y1) in zip(labels, boxes, strict=True):
        assert np.array_equal(np.asarray(Image.open(entry.image)), gray[y0:y1, x0:x1])


def test_a_prediction_stored_without_boxes_is_cut_again(tmp_path: Path) -> None:
    """Rows from before revision 0002 have no boxes: the page is cut as the predictor cuts it, and a cut
    that disagrees with the number of predicted lines leaves the correction out, counted."""
    db = f"sqlite:///{tmp_path / 'monitoring.db'}"
    store = Store(db)
    page = page_png(["first line", "second one", "third"])
    agrees = store.record_prediction(page, prediction(["frst lne", "secnd one", "thrd"]), 1.0, "ui")
    store.record_feedback(agrees, "first line\nsecond one\nthird", "wrong_text")
    differs = store.record_prediction(page, prediction(["frst lne", "secnd one"]), 1.0, "ui")
    store.record_feedback(differs, "first line\nsecond one", "wrong_text")
    with store.engine.begin() as conn:
        conn.execute(sql("UPDATE predictions SET line_boxes = NULL"))
    assert [s.boxes for s in store.corrected_samples()] == [None, None]
    store.close()
    written, unaligned = export_feedback(tmp_path / "out", db)
    assert written == 3
    assert [(u.prediction_id, u.predicted_lines, u.cut_lines) for u in unaligned] == [(differs, 2, 3)]


def test_align_lines_joins_cuts_and_leaves_out() -> None:
    predicted = ["the quick brwn", "fox jumps", "ovr the", "lazy dog", "zzzz qqqq"]
    # the user joined lines 2 and 3, broke line 4, and wrote nothing like the last line
    corrected = ["the quick brown", "fox jumps over the", "lazy", "dog", "completely different text"]
    found = align_lines(predicted, corrected)
    assert [(p.index, p.text) for p in found.pairs] == [
        (0, "the quick brown"),
        (1, "fox jumps"),
        (2, "over the"),
        (3, "lazy dog"),
    ]
    assert found.predicted_left == ["zzzz qqqq"]
    assert found.corrected_left == ["completely different text"]

"""``feedback export``: user corrections -> one line sample per predicted line, in a ``labels.jsonl`` folder.

The page image is cut into exactly the lines the predictor read: the line boxes stored with the prediction
(:attr:`~text_recognizer.serving.store.CorrectedSample.boxes`), one per predicted line. A prediction stored
before the store kept boxes is cut again (:func:`text_recognizer.images.page_boxes`, as the predictor
cuts it); if that gives another number of lines than the prediction had, the correction is *unaligned* as a
whole. Each non-blank line of the correction is then paired with a predicted line:

- the same number of lines: top to bottom, one to one;
- a different number: :func:`align_lines`, a dynamic programme over both line lists whose steps are a
  one-to-one pair (cost: the edit distance of the two texts), two corrected lines for one predicted line (the
  user broke a line: joined with a space), one corrected line over two predicted lines (the user joined two
  lines: cut at the word boundary that best matches the two predictions), or a line of either side left
  alone. A pair whose texts differ by more than :data:`MAX_PAIR_CER` of the correction's length is not
  trusted either.

Lines left alone or untrusted are counted, listed in ``unaligned.jsonl`` and not exported, never dropped
silently. A line whose correction equals its prediction is *confirmed correct*: it is no correction, and goes
to the optional ``confirmed/`` set (``--confirmed``) instead of the corrections.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from text_recognizer.images import load_gray, page_boxes
from text_recognizer.inference.types import Box
from text_recognizer.metrics import edit_distance
from text_recognizer.serving.store import CorrectedSample, Store

UNALIGNED_FILE = "unaligned.jsonl"
CONFIRMED_DIR = "confirmed"
#: a pair found by :func:`align_lines` is kept when edits / corrected characters is at most this
MAX_PAIR_CER = 0.6


@dataclass(frozen=True)
class Unaligned:
    """A correction, or some of its lines, that could not be paired with the image's lines.

    Attributes:
        left_out: each line not exported, as ``"predicted: TEXT"`` (an image line no corrected line matched)
            or ``"corrected: TEXT"`` (a corrected line with no image line); empty when the whole correction
            is left out because the cut does not give the predicted lines.
    """

    prediction_id: str
    predicted_lines: int
    cut_lines: int
    corrected_lines: int
    left_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class LinePair:
    """Predicted line ``index`` (top to bottom) and its corrected text."""

    index: int
    text: str


@dataclass
class Alignment:
    """What :func:`align_lines` found: the pairs, and the line texts of each side left out."""

    pairs: list[LinePair] = field(default_factory=list)
    predicted_left: list[str] = field(default_factory=list)
    corrected_left: list[str] = field(default_factory=list)


def correction_lines(text: str) -> list[str]:
    """The non-blank lines of a correction, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def best_cut(text: str, first: str, second: str) -> tuple[str, str]:
    """``text`` cut at the space that makes its two parts closest (edit distance) to ``first`` and
    ``second``; ``(text, "")`` when it has no space."""
    cuts = [i for i, c in enumerate(text) if c == " "]
    if not cuts:
        return text, ""
    i = min(cuts, key=lambda k: edit_distance(text[:k], first) + edit_distance(text[k + 1 :], second))
    return text[:i].strip(), text[i + 1 :].strip()


def align_lines(predicted: list[str], corrected: list[str]) -> Alignment:
    """Pair ``corrected`` lines with ``predicted`` lines by least total edit distance (see the module
    docstring for the steps); O(len(predicted) * len(corrected)) edit distances."""
    m, n = len(predicted), len(corrected)
    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(m + 1)]
    back: list[list[tuple[int, int] | None]] = [[None] * (n + 1) for _ in range(m + 1)]
    cost[0][0] = 0.0
    for i in range(m + 1):
        for j in range(n + 1):
            c = cost[i][j]
            if c == inf:
                continue
            steps: list[tuple[int, int, float]] = []
            if i < m:
                steps.append((1, 0, len(predicted[i]) + 1.0))  # an image line with no correction
            if j < n:
                steps.append((0, 1, len(corrected[j]) + 1.0))  # a corrected line with no image line
            if i < m and j < n:
                steps.append((1, 1, edit_distance(predicted[i], corrected[j])))
            if i < m and j + 1 < n:
                joined = f"{corrected[j]} {corrected[j + 1]}"
                steps.append((1, 2, edit_distance(predicted[i], joined) + 0.5))
            if i + 1 < m and j < n:
                joined = f"{predicted[i]} {predicted[i + 1]}"
                steps.append((2, 1, edit_distance(joined, corrected[j]) + 0.5))
            for di, dj, extra in steps:
                if c + extra < cost[i + di][j + dj]:
                    cost[i + di][j + dj] = c + extra
                    back[i + di][j + dj] = (di, dj)
    out = Alignment()
    i, j = m, n
    while (i, j) != (0, 0):
        step = back[i][j]
        assert step is not None
        di, dj = step
        i, j = i - di, j - dj
        if (di, dj) == (1, 0):
            out.predicted_left.append(predicted[i])
        elif (di, dj) == (0, 1):
            out.corrected_left.append(corrected[j])
        elif (di, dj) == (1, 2):
            out.pairs.append(LinePair(i, f"{corrected[j]} {corrected[j + 1]}"))
        elif (di, dj) == (2, 1):
            first, second = best_cut(corrected[j], predicted[i], predicted[i + 1])
            out.pairs.extend([LinePair(i + 1, second), LinePair(i, first)])
        else:
            out.pairs.append(LinePair(i, corrected[j]))
    for pair in list(out.pairs):
        if not pair.text or edit_distance(predicted[pair.index], pair.text) > MAX_PAIR_CER * len(pair.text):
            out.pairs.remove(pair)
            out.corrected_left.append(pair.text)
            out.predicted_left.append(predicted[pair.index])
    out.pairs.reverse()
    out.predicted_left.reverse()
    out.corrected_left.reverse()
    return out


def sample_boxes(sample: CorrectedSample, gray: np.ndarray) -> list[Box]:
    """The boxes of the sample's lines: those the predictor stored, else the page ``gray`` ``[H, W]`` cut
    again as the predictor cuts it."""
    if sample.boxes is not None:
        return list(sample.boxes)
    return [(b.left, b.top, b.right, b.bottom) for b in page_boxes(gray)]


def line_crops(sample: CorrectedSample) -> list[bytes]:
    """The sample's image cut into its lines (:func:`sample_boxes`): PNG bytes of each grey crop ``[h, w]``,
    in the order of the predicted lines. A box is clipped to the image; one left empty gives a 1 x 1 crop."""
    gray = load_gray(sample.image)
    h, w = gray.shape
    crops = []
    for x0, y0, x1, y1 in sample_boxes(sample, gray):
        x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
        x1, y1 = min(max(x1, x0 + 1), w), min(max(y1, y0 + 1), h)
        buf = io.BytesIO()
        Image.fromarray(gray[y0:y1, x0:x1]).save(buf, "PNG")
        crops.append(buf.getvalue())
    return crops


def pair_sample(sample: CorrectedSample, n_cut: int) -> tuple[list[LinePair], Unaligned | None]:
    """The lines of ``sample`` to export, and what is left out of it (None: nothing)."""
    texts = correction_lines(sample.text)
    counts = (sample.prediction_id, sample.n_lines, n_cut, len(texts))
    if n_cut != sample.n_lines:
        return [], Unaligned(*counts)
    predicted = sample.predicted_text.split("\n")
    if len(texts) == n_cut:
        return [LinePair(i, t) for i, t in enumerate(texts)], None
    if len(predicted) != sample.n_lines:  # no per-line prediction to align with
        return [], Unaligned(*counts)
    found = align_lines(predicted, texts)
    left = tuple(
        [f"predicted: {t}" for t in found.predicted_left] + [f"corrected: {t}" for t in found.corrected_left]
    )
    return found.pairs, Unaligned(*counts, left) if left else None


def _write(path: Path, data: bytes) -> None:
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)


def export_feedback(out: Path, db: str | None = None, confirmed: bool = False) -> tuple[int, list[Unaligned]]:
    """Write the user-corrected lines as line samples in a folder that training reads directly.

    ``out/images/<prediction id>-<line>.png`` holds each line crop, ``out/labels.jsonl`` one
    ``{"image", "text"}`` line each, ``out/unaligned.jsonl`` the corrections (or lines of them) left out. With
    ``confirmed``, lines the user left as predicted go to ``out/confirmed/`` in the same format. Returns
    ``(corrected lines written, unaligned corrections)``.
    """
    from text_recognizer.data.folder import write_labels

    store = Store(db)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    entries: list[tuple[str, str]] = []
    same: list[tuple[str, str]] = []
    unaligned: list[Unaligned] = []
    try:
        for sample in store.corrected_samples():
            crops = line_crops(sample)
            pairs, left = pair_sample(sample, len(crops))
            if left is not None:
                unaligned.append(left)
            predicted = sample.predicted_text.split("\n")
            for pair in pairs:
                name = f"images/{sample.prediction_id}-{pair.index:03d}.png"
                unchanged = pair.index < len(predicted) and predicted[pair.index].strip() == pair.text
                if unchanged and not confirmed:
                    continue
                folder = out / CONFIRMED_DIR if unchanged else out
                (folder / "images").mkdir(parents=True, exist_ok=True)
                _write(folder / name, crops[pair.index])
                (same if unchanged else entries).append((name, pair.text))
    finally:
        store.close()
    labels = write_labels(out, entries)
    if confirmed:
        write_labels(out / CONFIRMED_DIR, same)
    (out / UNALIGNED_FILE).write_text("".join(json.dumps(asdict(u)) + "\n" for u in unaligned))
    print(f"wrote {len(entries)} corrected line sample(s) to {labels}")
    if confirmed:
        print(f"wrote {len(same)} confirmed-correct line sample(s) to {out / CONFIRMED_DIR}")
    if unaligned:
        print(f"{len(unaligned)} correction(s) not wholly exported: lines not aligned ({UNALIGNED_FILE}):")
        for u in unaligned:
            what = "; ".join(u.left_out) if u.left_out else "the whole correction"
            print(
                f"  {u.prediction_id}: predicted {u.predicted_lines} line(s), cut {u.cut_lines}, "
                f"corrected {u.corrected_lines}; left out: {what}"
            )
    return len(entries), unaligned

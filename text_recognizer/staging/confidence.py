"""Calibrate the confidence: fit the map from the raw line score to the expected share of correct characters.

Synthetic validation lines are read through the predictor that serves (raw scores, no line left out); each
line read gets the share of its characters that are right (``1 - CER`` against the truth, at least 0). A
line that is not the image's text (a speck cut out as a line) and every line read on a blank image
(:mod:`text_recognizer.staging.blanks`: nothing there to read) count as 0 correct. An isotonic fit (pool
adjacent violators) of share on score is the map: non-decreasing, stored in the manifest as
:class:`~text_recognizer.inference.manifest.Calibration`.

``text-recognizer calibrate ARTIFACT`` fits it again for an artifact already staged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from text_recognizer.inference.manifest import Calibration, Manifest
from text_recognizer.inference.predictor import Predictor, load_predictor
from text_recognizer.inference.types import LineResult
from text_recognizer.metrics import edit_distance
from text_recognizer.staging.blanks import blank_images
from text_recognizer.vocab import Vocabulary

#: score bins of the calibration error
ECE_BINS = 10


@dataclass(frozen=True)
class CalibrationConfig:
    """What the map is fit on: ``lines`` synthetic validation lines and ``blanks`` blank images."""

    lines: int = 384
    blanks: int = 128
    seed: int = 4242


def share_correct(truth: str, text: str) -> float:
    """The share of ``truth``'s characters read right: ``max(0, 1 - edits / len(truth))``; 0 when there is
    nothing to read (empty truth) and something was read."""
    if not truth:
        return 0.0 if text else 1.0
    return max(0.0, 1.0 - edit_distance(truth, text) / len(truth))


def calibration_error(confidence: Sequence[float], share: Sequence[float], bins: int = ECE_BINS) -> float:
    """Expected calibration error: over ``bins`` equal score bins of ``[0, 1]``, the mean of
    ``|mean confidence - mean share correct|``, weighted by each bin's count."""
    c, s = np.asarray(confidence, np.float64), np.asarray(share, np.float64)
    if c.size == 0:
        return 0.0
    idx = np.minimum((c * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(idx):
        m = idx == b
        total += m.sum() * abs(c[m].mean() - s[m].mean())
    return float(total / c.size)


def isotonic_fit(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    """Pool adjacent violators: the non-decreasing fit of ``y`` on ``x``, as one point (mean x, mean y) per
    pooled block; both lists non-decreasing."""
    order = np.argsort(np.asarray(x), kind="stable")
    blocks: list[list[float]] = []  # [sum x, sum y, count]
    for i in order.tolist():
        blocks.append([float(x[i]), float(y[i]), 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            sx, sy, n = blocks.pop()
            blocks[-1][0] += sx
            blocks[-1][1] += sy
            blocks[-1][2] += n
    xs = [round(sx / n, 5) for sx, _, n in blocks]
    ys = [round(sy / n, 5) for _, sy, n in blocks]
    return xs, list(np.maximum.accumulate(ys).tolist())


def scored_lines(reads: list[LineResult], truth: str) -> list[tuple[float, float]]:
    """(confidence, share correct) of each line read on one image whose text is the single line ``truth``:
    the line with the most characters is the text, the others are not (share 0)."""
    read = [r for r in reads if r.text]
    if not read:
        return []
    main = max(range(len(read)), key=lambda i: len(read[i].text))
    return [(r.confidence, share_correct(truth if i == main else "", r.text)) for i, r in enumerate(read)]


def line_scores(
    predictor: Predictor, images: Sequence[np.ndarray], truths: Sequence[str]
) -> list[tuple[float, float]]:
    """(confidence, share correct) of every line ``predictor`` reads on ``images`` (none left out)."""
    out: list[tuple[float, float]] = []
    for image, truth in zip(images, truths, strict=True):
        out += scored_lines(predictor.read_lines(predictor.preprocessor(image)), Vocabulary.normalize(truth))
    return out


def fit_calibration(predictor: Predictor, cfg: CalibrationConfig | None = None) -> Calibration:
    """The confidence map of ``predictor``'s decoder, fit on the synthetic lines and blanks of ``cfg``.

    Raises:
        RuntimeError: the fonts or text corpus are missing (the synthetic lines cannot be rendered).
    """
    from text_recognizer.data.synth.dataset import SynthSource

    cfg = cfg or CalibrationConfig()
    raw = dataclasses.replace(predictor, calibration=None)
    src = SynthSource(kind="line", split="val", size=cfg.lines, seed=cfg.seed)
    samples = [src[i] for i in range(cfg.lines)]
    blanks = blank_images(cfg.blanks, seed=cfg.seed)
    pairs = line_scores(
        raw, [s.image for s in samples] + blanks, [s.text for s in samples] + [""] * len(blanks)
    )
    score, share = [p[0] for p in pairs], [p[1] for p in pairs]
    xs, ys = isotonic_fit(score, share)
    cal = Calibration(
        raw=tuple(xs),
        share=tuple(ys),
        decoder=predictor.decoder,
        measured_on=f"{len(pairs)} lines read on {cfg.lines} synthetic validation lines and "
        f"{cfg.blanks} blank images (seed {cfg.seed})",
        ece_raw=round(calibration_error(score, share), 4),
    )
    fitted = calibration_error([cal(s) for s in score], share)
    return dataclasses.replace(cal, ece_calibrated=round(fitted, 4))


def recalibrate(folder: Path, cfg: CalibrationConfig | None = None) -> Calibration:
    """Fit the map of the artifact in ``folder`` (with its default decoder) and write it into its
    manifest (the model files are unchanged)."""
    manifest = Manifest.read(folder)
    cal = fit_calibration(load_predictor(folder, decoder=manifest.decoding.default), cfg)
    dataclasses.replace(manifest, calibration=cal).write(folder)
    print(f"{folder}: confidence calibrated ({cal.measured_on}): ECE {cal.ece_raw} -> {cal.ece_calibrated}")
    return cal

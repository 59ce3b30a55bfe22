"""Does the confidence predict errors, and do blank images come back empty?

``python -m benchmarks.confidence [--model DIR] [--lines 200] [--blanks 200]`` prints, for the artifact's
calibrated confidence against the raw score (the geometric mean of the character probabilities, every line
kept, page = mean of the lines: what the predictor reported before calibration):

- the calibration error (ECE, :func:`~text_recognizer.staging.confidence.calibration_error`) per line and per
  image on fresh synthetic validation lines (a seed that staging does not fit on), and per image on the real
  pages of ``../shared/real-handwriting/`` (read in place; measured there, never fit on them);
- the share of blank and noise-only images (:mod:`text_recognizer.staging.blanks`, another seed than
  staging's) read as empty text or with a confidence below 0.3 (target: at least 95 %);
- the CER of the synthetic lines and the real pages, raw (every line) and with the low-confidence lines left
  out, so that leaving lines out is seen not to lose text;
- the median time of a line image (``predict``, decoding with the artifact's default decoder).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from text_recognizer.data.folder import read_labels
from text_recognizer.images import ImageError, load_gray
from text_recognizer.inference.predictor import Predictor, load_predictor
from text_recognizer.metrics import error_rate
from text_recognizer.staging.blanks import blank_images
from text_recognizer.staging.confidence import calibration_error, line_scores, share_correct
from text_recognizer.vocab import Vocabulary

REPO = Path(__file__).resolve().parents[1]
REAL_HANDWRITING = REPO.parent / "shared" / "real-handwriting"
#: a blank image passes when its text is empty or its confidence below this
BLANK_CONFIDENCE = 0.3
LINES_SEED = 9090
BLANKS_SEED = 31337


@dataclass
class Reads:
    """Per image: (text, confidence) raw (every line, mean raw confidence) and calibrated (``predict``); the
    seconds of each ``predict``; and how many images the predictor refused (:class:`ImageError`: more than
    ``MAX_LINES`` bands in a noise texture; the API answers 422 with no text), each read as no text,
    confidence 0."""

    raw: list[tuple[str, float]] = field(default_factory=list)
    calibrated: list[tuple[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    refused: int = 0


def read_both(predictor: Predictor, images: list[np.ndarray]) -> Reads:
    """Every image of ``images`` read raw and calibrated (:class:`Reads`)."""
    raw_predictor = dataclasses.replace(predictor, calibration=None)
    out = Reads()
    for image in images:
        try:
            page = raw_predictor.preprocessor(image)
        except ImageError:
            out.refused += 1
            out.raw.append(("", 0.0))
            out.calibrated.append(("", 0.0))
            continue
        lines = [ln for ln in raw_predictor.read_lines(page) if ln.text]
        out.raw.append(
            ("\n".join(ln.text for ln in lines), float(np.mean([ln.confidence for ln in lines] or [0])))
        )
        t0 = time.perf_counter()
        pred = predictor.predict(image)
        out.seconds.append(time.perf_counter() - t0)
        out.calibrated.append((pred.text, pred.confidence))
    return out


def image_ece(read: list[tuple[str, float]], truths: list[str]) -> float:
    return calibration_error(
        [c for _, c in read], [share_correct(t, p) for (p, _), t in zip(read, truths, strict=True)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--blanks", type=int, default=200)
    args = parser.parse_args()
    from text_recognizer.data.synth.dataset import SynthSource

    predictor = load_predictor(args.model)
    cal = predictor.calibration
    print(
        f"model {predictor.model_version}, decoder {predictor.decoder}, calibration: "
        f"{'none' if cal is None else cal.measured_on + f' (fit ECE {cal.ece_raw} -> {cal.ece_calibrated})'}"
    )
    src = SynthSource(kind="line", split="val", size=args.lines, seed=LINES_SEED)
    samples = [src[i] for i in range(args.lines)]
    images, truths = [s.image for s in samples], [Vocabulary.normalize(s.text) for s in samples]
    predictor.predict(images[0])  # warm-up
    reads = read_both(predictor, images)
    raw, after, seconds = reads.raw, reads.calibrated, reads.seconds
    per_line = {
        name: line_scores(p, images, truths)
        for name, p in (("raw", dataclasses.replace(predictor, calibration=None)), ("calibrated", predictor))
    }
    print(f"\nsynthetic validation lines ({args.lines}, seed {LINES_SEED}):")
    for name, pairs in per_line.items():
        ece = calibration_error([c for c, _ in pairs], [s for _, s in pairs])
        print(f"  ECE per line read  {name:>10}: {ece:.3f} ({len(pairs)} lines)")
    ece_raw, ece_cal = image_ece(raw, truths), image_ece(after, truths)
    print(f"  ECE per image             raw: {ece_raw:.3f}   calibrated: {ece_cal:.3f}")
    print(
        f"  CER raw (every line): {error_rate([t for t, _ in raw], truths):.4f}   "
        f"calibrated, low lines left out: {error_rate([t for t, _ in after], truths):.4f}"
    )
    print(f"  median predict per line image: {1000 * float(np.median(seconds)):.1f} ms")

    for folder in sorted(REAL_HANDWRITING.glob("*/labels.jsonl")):
        entries = read_labels(folder.parent)
        pages = [load_gray(e.image) for e in entries]
        ptruths = [Vocabulary.normalize(e.text) for e in entries]
        page_reads = read_both(predictor, pages)
        praw, pafter = page_reads.raw, page_reads.calibrated
        print(f"\nreal pages {folder.parent.name} ({len(pages)}):")
        for e, (rt, rc), (at, ac), t in zip(entries, praw, pafter, ptruths, strict=True):
            print(
                f"  {e.image.name}: share correct raw {share_correct(t, rt):.3f} conf {rc:.3f} | "
                f"calibrated {share_correct(t, at):.3f} conf {ac:.3f} ({at.count(chr(10)) + 1} lines)"
            )
        print(
            f"  ECE per page raw {image_ece(praw, ptruths):.3f}   calibrated {image_ece(pafter, ptruths):.3f}"
        )
        print(
            f"  CER raw {error_rate([t for t, _ in praw], ptruths):.4f}   "
            f"calibrated {error_rate([t for t, _ in pafter], ptruths):.4f}"
        )

    blanks = blank_images(args.blanks, seed=BLANKS_SEED)
    blank_reads = read_both(predictor, blanks)
    print(
        f"\nblank / noise-only images ({args.blanks}, seed {BLANKS_SEED}): "
        f"empty or confidence < {BLANK_CONFIDENCE}"
    )
    for name, read in (("raw", blank_reads.raw), ("calibrated", blank_reads.calibrated)):
        ok = np.mean([not t.strip() or c < BLANK_CONFIDENCE for t, c in read])
        empty = np.mean([not t.strip() for t, _ in read])
        print(f"  {name:>10}: {ok:.1%} (empty text {empty:.1%}) -- target >= 95%")
    print(f"  refused by the predictor (422, no text): {blank_reads.refused}")


if __name__ == "__main__":
    main()

"""Line finding on hard pages: lines found, merged, split, dropped, spurious, and the whole page's CER.

    python -m benchmarks.segmentation [--pages 20] [--seed 11] [--segmenter paths profile] [--model DIR]

Data: ``--pages`` synthetic pages of each hard case of the renderer (:data:`HARD_CASE_NAMES`: skew up to
5 degrees, wavy baselines, tight spacing with touching ascenders and descenders, ruled paper, neighbour lines
cut at the top and bottom edges, dust, printed labels), rendered with a fixed seed, and every labelled folder
of ``../shared/real-handwriting/`` (both scales; read in place, measured only).

Each page is cut by each segmenter (:data:`text_recognizer.images.SEGMENTERS`) and the lines read by the
shipped model (whole pipeline: :func:`text_recognizer.images.page_lines` then the predictor's recognizer).
Predicted lines are aligned with true lines by :func:`benchmarks.error_sources.align_moves`: on synthetic
pages by their pixels (:func:`pixel_cost`: the renderer knows which line each ink pixel is), on real pages
by text (:func:`benchmarks.error_sources.align`). *found* is the matched lines, as a share of the true lines.
Printed per data set and segmenter, then the whole table as JSON on the last line. Pages cut wrong are drawn
in ``--pictures`` (default ``outputs/segmentation/<time>/``): each found band tinted, and what it was read
as.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from benchmarks.error_sources import MOVES, STEPS, Alignment, align, align_moves, folder_pages, tally
from benchmarks.run_all import REAL_HANDWRITING, real_sets
from text_recognizer.data.synth.corpus import load_corpus
from text_recognizer.data.synth.render import HARD_CASE_NAMES, NOT_A_LINE, hard_case, render_page
from text_recognizer.images import SEGMENTERS, load_gray, page_line_map, page_lines
from text_recognizer.inference.predictor import Predictor, load_predictor


@dataclass(frozen=True)
class TruePage:
    """A page to cut: uint8 ``[H, W]`` image (or its file), true lines, and when known (rendered pages) the
    renderer's map of each line's ink (uint8 ``[H, W]``, ``k`` for line ``k``, 1-based; 0 elsewhere)."""

    image: np.ndarray | Path
    lines: list[str]
    line_map: np.ndarray | None = None


def hard_pages(case: str, n: int, seed: int) -> list[TruePage]:
    """``n`` synthetic test pages of hard case ``case``, the same for the same ``seed``."""
    corpus = load_corpus("test")
    cfg = hard_case(case)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, HARD_CASE_NAMES.index(case), i])
        page = render_page(corpus.sample_paragraph(rng), rng, cfg)
        out.append(TruePage(page.image, page.text.split("\n"), page.line_map))
    return out


def pixel_cost(found: np.ndarray, truth: np.ndarray, n: int, m: int) -> object:
    """The move costs of aligning ``n`` found lines with ``m`` true lines by their pixels: ``found`` int
    ``[H, W]`` the band each pixel is read in (:func:`text_recognizer.images.page_line_map`), ``truth`` the
    renderer's line of each ink pixel (:attr:`TruePage.line_map`: ``1..m``, or
    :data:`~text_recognizer.data.synth.render.NOT_A_LINE` for a cut neighbour line's ink). With ``C[i, j]``
    the ink of true line ``j`` in band ``i``, ``recall = C / ink of j`` and ``precision = C / all ink in i``
    (a neighbour's too): a match costs ``4 (1 - IoU)`` of the two pixel sets (so below IoU 0.5 a drop and a
    spurious line are cheaper), a merge ``4 (2 - recall_1 - recall_2)`` (both lines mostly in one band), a
    split ``4 (2 - precision_1 - precision_2)`` (both bands mostly one line's ink); a drop or a spurious line
    costs 1.

    Pixels, not boxes: the boxes of tightly spaced lines overlap by half their height (each takes its
    ascenders and descenders), so a correct cut, whose bands cannot overlap, matched them badly (a tight page
    read line for line right was scored as 3 lines dropped and 3 split)."""
    ink = truth > 0
    lines = np.where(truth[ink] == NOT_A_LINE, m + 1, truth[ink]).astype(np.int64)
    counts = np.zeros((n + 1, m + 2), np.float64)  # [band 0..n, line 0..m, not a line]
    np.add.at(counts, (found[ink], lines), 1.0)
    c = counts[1:, 1 : m + 1]
    line_ink = np.maximum(1.0, counts[:, 1 : m + 1].sum(axis=0))[None, :]
    band_ink = np.maximum(1.0, counts[1:, 1:].sum(axis=1))[:, None]
    recall, precision = c / line_ink, c / band_ink
    iou = c / np.maximum(1.0, line_ink + band_ink - c)

    def cost(name: str, i: int, j: int) -> float:
        if name == "match":
            return 4.0 * (1.0 - float(iou[i, j]))
        if name == "merged":
            return 4.0 * (2.0 - float(recall[i, j] + recall[i, j + 1]))
        if name == "split":
            return 4.0 * (2.0 - float(precision[i, j] + precision[i + 1, j]))
        return 1.0

    return cost


@dataclass
class Row:
    """Totals of one data set and segmenter."""

    pages: int = 0
    alignment: Alignment | None = None
    cut_s: float = 0.0  # seconds spent finding and cutting lines
    page_s: float = 0.0  # seconds of the whole pipeline


#: Colours of the bands in the pictures of :func:`picture` (RGB), one after the other down the page.
BAND_COLOURS = ((230, 80, 60), (40, 120, 220), (40, 170, 80), (200, 140, 0), (150, 70, 200))


def picture(gray: np.ndarray, found: np.ndarray, texts: list[str], title: str) -> Image.Image:
    """The page ``gray`` (uint8 ``[H, W]``) with each found band (``found``, int ``[H, W]``, 1-based) tinted
    in turn by :data:`BAND_COLOURS`, and under it the title and what each band was read as."""
    h, w = gray.shape
    rgb = np.repeat(gray[:, :, None].astype(np.float32), 3, axis=2)
    for k in range(1, int(found.max()) + 1):
        band = found == k
        rgb[band] = 0.6 * rgb[band] + 0.4 * np.array(BAND_COLOURS[(k - 1) % len(BAND_COLOURS)], np.float32)
    caption = [title] + [f"{k}: {t}" for k, t in enumerate(texts, start=1)]
    line_h = 14
    out = Image.new("RGB", (max(w, 480), h + line_h * len(caption) + 6), "white")
    out.paste(Image.fromarray(rgb.astype(np.uint8)), (0, 0))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(caption):
        colour = (0, 0, 0) if i == 0 else BAND_COLOURS[(i - 1) % len(BAND_COLOURS)]
        draw.text((4, h + 3 + i * line_h), text[:160], fill=colour)
    return out


def measure(
    predictor: Predictor,
    pages: list[TruePage],
    segmenter: str,
    name: str,
    pictures: Path | None = None,
    max_pictures: int = 5,
) -> Row:
    """Cut and read ``pages`` with ``segmenter``; with ``pictures``, the first ``max_pictures`` pages with a
    line merged, split, dropped or spurious are drawn there (:func:`picture`) as
    ``<name>-<segmenter>-<page>.png``."""
    pre = predictor.preprocessor
    row = Row(alignment=Alignment())
    drawn = 0
    for index, page in enumerate(tqdm(pages, desc=f"{name} {segmenter}", leave=False)):
        t0 = time.perf_counter()
        gray = load_gray(page.image)
        boxes, crops, _ = page_lines(gray, pre.height, pre.max_width, segmenter)
        t1 = time.perf_counter()
        texts = [t for t, _ in predictor.recognize(crops)]
        row.page_s += time.perf_counter() - t0
        row.cut_s += t1 - t0
        row.pages += 1
        found = page_line_map(gray, segmenter) if page.line_map is not None else None
        if page.line_map is not None:
            assert found is not None
            cost = pixel_cost(found, page.line_map, len(boxes), len(page.lines))
            moves = align_moves(len(boxes), len(page.lines), cost)  # type: ignore[arg-type]
            result = tally(moves, texts, page.lines)
        else:
            result = align(texts, page.lines)
        assert row.alignment is not None
        row.alignment.add(result)
        wrong = {m: getattr(result, m) for m in MOVES[1:] if getattr(result, m)}
        if pictures is not None and wrong and drawn < max_pictures:
            if found is None:  # a real page: its bands are only needed for the picture
                found = page_line_map(gray, segmenter)
            title = f"{name} page {index}, {segmenter}: {len(page.lines)} lines, " + ", ".join(
                f"{n} {m}" for m, n in wrong.items()
            )
            pictures.mkdir(parents=True, exist_ok=True)
            picture(gray, found, texts, title).save(pictures / f"{name}-{segmenter}-{index:02d}.png")
            drawn += 1
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="artifact folder (default: the shipped one)")
    parser.add_argument("--pages", type=int, default=20, help="synthetic pages of each hard case")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--segmenter", nargs="+", default=list(SEGMENTERS), choices=SEGMENTERS)
    parser.add_argument("--cases", nargs="+", default=list(HARD_CASE_NAMES), choices=HARD_CASE_NAMES)
    parser.add_argument(
        "--pictures",
        type=Path,
        default=None,
        help="folder for pictures of the pages cut wrong, at most 5 per data set and segmenter "
        "(default: outputs/segmentation/<time>)",
    )
    args = parser.parse_args()
    if args.pictures is None:
        args.pictures = Path("outputs/segmentation") / time.strftime("%Y%m%d-%H%M%S")
    predictor = load_predictor(args.model, threads=1)
    sets: dict[str, list[TruePage]] = {case: hard_pages(case, args.pages, args.seed) for case in args.cases}
    real = real_sets(REAL_HANDWRITING, None)
    if not real:
        print(f"no real handwriting at {REAL_HANDWRITING}: synthetic pages only")
    for ds in real:
        sets[ds.name] = [TruePage(image, text.split("\n")) for image, text in folder_pages(ds.path)]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, pages in sets.items():
        for segmenter in args.segmenter:
            row = measure(predictor, pages, segmenter, name, args.pictures)
            a = row.alignment
            assert a is not None
            r = {k: float(v) for k, v in asdict(a).items()}
            r["found"] = a.match / max(1, a.true_lines)
            r["page_cer"] = a.page_errors / max(1, a.page_chars)
            r["cut_ms"] = 1000 * row.cut_s / max(1, row.pages)
            r["page_ms"] = 1000 * row.page_s / max(1, row.pages)
            table.setdefault(name, {})[segmenter] = r
    header = f"{'data':22} {'segmenter':9} {'true':>5} {'pred':>5} {'found':>6} "
    print(header + " ".join(f"{m:>8}" for m in MOVES[1:]) + f" {'page CER':>8} {'cut ms':>7} {'page ms':>7}")
    totals: dict[str, Alignment] = {}
    for name, by_seg in table.items():
        for segmenter, r in by_seg.items():
            counts = " ".join(f"{int(r[m]):>8}" for m in MOVES[1:])
            print(
                f"{name:22} {segmenter:9} {int(r['true_lines']):>5} {int(r['predicted_lines']):>5} "
                f"{r['found']:>6.1%} {counts} {r['page_cer']:>8.3f} {r['cut_ms']:>7.1f} {r['page_ms']:>7.1f}"
            )
            if name in HARD_CASE_NAMES:
                total = totals.setdefault(segmenter, Alignment())
                total.add(Alignment(**{k: int(v) for k, v in r.items() if k in asdict(total)}))
    for segmenter, t in totals.items():
        print(
            f"synthetic hard pages, {segmenter}: {t.match}/{t.true_lines} lines found "
            f"({t.match / max(1, t.true_lines):.1%}), {t.merged} merged, "
            f"{t.spurious} spurious ({t.spurious / max(1, t.true_lines):.1%}), "
            f"page CER {t.page_errors / max(1, t.page_chars):.3f}"
        )
    assert set(STEPS) == set(MOVES)
    if args.pictures.is_dir():  # made for this run (its own time) when the first picture is drawn
        print(f"pictures of the pages cut wrong (bands tinted, what each was read as): {args.pictures}/")
    print(json.dumps(table))


if __name__ == "__main__":
    main()

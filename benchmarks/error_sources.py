"""Where the page errors come from: line segmentation (lines dropped, merged, split, spurious) or recognition.

    python -m benchmarks.error_sources [--model DIR] [--pages 30] [--seed 1]

Reads every labelled folder of ``../shared/real-handwriting/`` (both scales, when present) and synthetic
test paragraphs (rendered here with a fixed seed), and aligns each page's predicted lines with its true
lines by text: a dynamic programme over the two line sequences whose moves are one predicted line for one
true line (a *match*), one predicted line for two true lines (*merged*), two predicted lines for one true
line (*split*), a true line with no predicted line (*dropped*) and a predicted line with no true line
(*spurious*), each costing the edit distance of the texts it pairs. No line boxes are needed, so the same
measure works on any labelled page.

Printed per data set: true lines, predicted lines, the counts of each move, the page CER, the CER of the
matched lines alone (recognition), and the share of the page's character errors that the segmentation moves
account for. The last line is the whole table as JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.run_all import REAL_HANDWRITING, real_sets
from text_recognizer.data.folder import read_labels
from text_recognizer.data.synth.dataset import SynthSource
from text_recognizer.inference.predictor import load_predictor
from text_recognizer.metrics import edit_distance

MOVES = ("match", "merged", "split", "dropped", "spurious")


@dataclass
class Alignment:
    """One page: how its predicted lines map onto its true lines, and the character errors of each kind."""

    true_lines: int = 0
    predicted_lines: int = 0
    match: int = 0
    merged: int = 0
    split: int = 0
    dropped: int = 0
    spurious: int = 0
    match_errors: int = 0  # edit distance summed over matched lines
    match_chars: int = 0  # characters of the true matched lines
    segmentation_errors: int = 0  # edit distance of the merged, split, dropped and spurious moves
    page_errors: int = 0  # edit distance of the whole page text
    page_chars: int = 0

    def add(self, other: Alignment) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)


#: A move's cost: ``(name, i, j) -> cost`` of the move named ``name`` taking predicted lines from ``i`` and
#: true lines from ``j`` (how many: :data:`STEPS`).
MoveCost = Callable[[str, int, int], float]
#: predicted and true lines each move takes
STEPS = {"match": (1, 1), "merged": (1, 2), "split": (2, 1), "dropped": (0, 1), "spurious": (1, 0)}


def align_moves(n: int, m: int, cost: MoveCost) -> list[tuple[str, int, int, float]]:
    """The cheapest sequence of moves (:data:`MOVES`) aligning ``n`` predicted lines with ``m`` true lines in
    order: ``(name, i, j, cost)`` each, ``i``/``j`` the first predicted/true line it takes, top to bottom.
    ``O(n * m)`` calls of ``cost``."""
    inf = float("inf")
    best = np.full((n + 1, m + 1), inf)
    move: dict[tuple[int, int], tuple[str, int, int, float]] = {}
    best[0, 0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            if best[i, j] == inf:
                continue
            for name, (di, dj) in STEPS.items():
                if i + di > n or j + dj > m:
                    continue
                c = cost(name, i, j)
                if best[i, j] + c < best[i + di, j + dj]:
                    best[i + di, j + dj] = best[i, j] + c
                    move[(i + di, j + dj)] = (name, di, dj, c)
    path = []
    i, j = n, m
    while (i, j) != (0, 0):
        name, di, dj, c = move[(i, j)]
        i, j = i - di, j - dj
        path.append((name, i, j, c))
    return path[::-1]


def align(predicted: list[str], truth: list[str]) -> Alignment:
    """Align predicted lines with true lines by text (see the module docstring), in
    ``O(n_predicted * n_true)``."""

    def cost(name: str, i: int, j: int) -> float:
        if name == "match":
            return edit_distance(predicted[i], truth[j])
        if name == "merged":
            return edit_distance(predicted[i], f"{truth[j]} {truth[j + 1]}")
        if name == "split":
            return edit_distance(f"{predicted[i]} {predicted[i + 1]}", truth[j])
        return len(truth[j]) if name == "dropped" else len(predicted[i])

    return tally(align_moves(len(predicted), len(truth), cost), predicted, truth)


def tally(moves: list[tuple[str, int, int, float]], predicted: list[str], truth: list[str]) -> Alignment:
    """Counts of each move and the character errors of matched lines, segmentation and the whole page."""
    result = Alignment(true_lines=len(truth), predicted_lines=len(predicted))
    for name, i, j, _ in moves:
        setattr(result, name, getattr(result, name) + 1)
        if name == "match":
            result.match_errors += edit_distance(predicted[i], truth[j])
            result.match_chars += len(truth[j])
        else:
            di, dj = STEPS[name]
            result.segmentation_errors += edit_distance(
                " ".join(predicted[i : i + di]), " ".join(truth[j : j + dj])
            )
    page_truth = "\n".join(truth)
    result.page_errors = edit_distance("\n".join(predicted), page_truth)
    result.page_chars = len(page_truth)
    return result


def synthetic_pages(n: int, seed: int) -> list[tuple[np.ndarray | Path, str]]:
    """``(image, text)`` of ``n`` synthetic test paragraphs, rendered in memory."""
    source = SynthSource(kind="paragraph", split="test", size=n, seed=seed)
    return [(s.image, s.text) for s in (source[i] for i in range(len(source)))]


def folder_pages(folder: Path) -> list[tuple[np.ndarray | Path, str]]:
    """``(path, text)`` of every page of a ``labels.jsonl`` folder."""
    return [(folder / rec.image, rec.text) for rec in read_labels(folder)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="artifact folder (default: the shipped one)")
    parser.add_argument("--pages", type=int, default=30, help="synthetic test paragraphs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    predictor = load_predictor(args.model)
    sets = {ds.name: folder_pages(ds.path) for ds in real_sets(REAL_HANDWRITING, None)}
    if not sets:
        print(f"no real handwriting at {REAL_HANDWRITING}: synthetic pages only")
    sets["synthetic test paragraphs"] = synthetic_pages(args.pages, args.seed)
    table: dict[str, dict[str, float]] = {}
    for name, data in sets.items():
        total = Alignment()
        for image, text in tqdm(data, desc=name, leave=False):
            prediction = predictor.predict(image)
            total.add(align([ln.text for ln in prediction.lines], text.split("\n")))
        row = {k: float(v) for k, v in asdict(total).items()}
        row["page_cer"] = total.page_errors / max(1, total.page_chars)
        row["recognition_cer"] = total.match_errors / max(1, total.match_chars)
        row["segmentation_share"] = total.segmentation_errors / max(
            1, total.segmentation_errors + total.match_errors
        )
        table[name] = row
    header = f"{'data':28} {'true':>5} {'pred':>5} " + " ".join(f"{m:>8}" for m in MOVES)
    print(header + f" {'page CER':>9} {'recog CER':>9} {'seg share':>9}")
    for name, r in table.items():
        counts = " ".join(f"{int(r[m]):>8}" for m in MOVES)
        print(
            f"{name:28} {int(r['true_lines']):>5} {int(r['predicted_lines']):>5} {counts} "
            f"{r['page_cer']:>9.3f} {r['recognition_cer']:>9.3f} {r['segmentation_share']:>9.2f}"
        )
    print(json.dumps(table))


if __name__ == "__main__":
    main()

"""Line throughput of the predictor with and without batching (``Predictor.recognize`` on prepared lines).

    python -m benchmarks.throughput --data DIR [--model ARTIFACT] [--count 128] [--batch 1 --batch 16]

Lines are prepared (decoded, normalised, resized to the model's height) beforehand, so this times the model
and the decoding loop alone.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from text_recognizer.data.folder import read_labels
from text_recognizer.images import load_gray, prepare_line
from text_recognizer.inference.predictor import load_predictor


def batching_throughput(
    data: Path, model: Path | None, count: int, batch_sizes: Sequence[int] = (1, 16)
) -> dict[int, float]:
    """Lines per second reading the first ``count`` line images of ``data`` at each batch size."""
    predictor = load_predictor(model)
    entries = read_labels(data)[:count]
    pre = predictor.preprocessor
    lines: list[np.ndarray] = [prepare_line(load_gray(e.image), pre.height, pre.max_width) for e in entries]
    out = {}
    for b in batch_sizes:
        batched = predictor.with_batch_size(b)
        batched.recognize(lines[: max(b, 2)])  # warm-up: this batch shape's first run allocates
        started = time.perf_counter()
        batched.recognize(lines)
        out[b] = len(lines) / (time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="a labels.jsonl folder of line images")
    parser.add_argument(
        "--model", type=Path, default=None, help="artifact folder (default: the shipped model)"
    )
    parser.add_argument("--count", type=int, default=128)
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 1 and 16)")
    args = parser.parse_args()
    rates = batching_throughput(args.data, args.model, int(args.count), args.batch or [1, 16])
    for b, rate in rates.items():
        print(f"batch {b:>3}: {rate:7.1f} lines/s")


if __name__ == "__main__":
    main()

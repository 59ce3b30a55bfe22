"""Cost of predicting in a worker process (the deadline that can stop the work) against in-process.

    python -m benchmarks.pool_overhead [--model ARTIFACT] [--n 200]

Median and p95 wall time of one line prediction, in-process and through a one-worker
:class:`~text_recognizer.serving.workers.WorkerPool` (same ONNX thread count), and the difference: the pipe
round trip. Target (issue 15): a line in 15 ms median.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from benchmarks.scoring import percentiles
from text_recognizer.inference.predictor import load_predictor
from text_recognizer.serving.workers import WorkerPool, worker_threads

EXAMPLE = Path(__file__).resolve().parents[1] / "text_recognizer/serving/examples/line-1.png"


def timed(predict: Callable[[bytes], object], image: bytes, n: int) -> list[float]:
    for _ in range(5):
        predict(image)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        predict(image)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="artifact folder (default: the shipped model)"
    )
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    image = EXAMPLE.read_bytes()
    threads = worker_threads(1)
    inproc = timed(load_predictor(args.model, threads=threads).predict, image, args.n)
    pool = WorkerPool(partial(load_predictor, args.model, threads=threads), 1)
    try:
        pooled = timed(pool.predict, image, args.n)
    finally:
        pool.close()
    (a50, a95), (b50, b95) = percentiles(inproc, (50, 95)), percentiles(pooled, (50, 95))
    print(f"in-process:    median {a50 * 1000:.2f} ms, p95 {a95 * 1000:.2f} ms (n={args.n})")
    print(f"worker process: median {b50 * 1000:.2f} ms, p95 {b95 * 1000:.2f} ms")
    print(f"overhead:      median {(b50 - a50) * 1000:+.2f} ms (target: a line in 15 ms median)")


if __name__ == "__main__":
    main()

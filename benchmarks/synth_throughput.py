"""Synthetic handwriting throughput on one CPU core: lines/s and paragraphs/s.

    python benchmarks/synth_throughput.py [--lines 1000] [--paragraphs 100] [--warmup 3000]

Targets (so that data never starves training): 200 lines/s and 20 paragraphs/s. The warm-up fills the
per-process glyph cache, as happens in the first seconds of training; the cold rate (the first 300 samples of
a fresh process, empty cache) is shown too.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before numpy and cv2 load their thread pools

import argparse
import time

import cv2

from text_recognizer.data.synth.corpus import load_corpus
from text_recognizer.data.synth.dataset import SynthSource
from text_recognizer.data.synth.fonts import list_fonts

TARGETS = {"line": 200.0, "paragraph": 20.0}
COLD = 300


def rate(source: SynthSource, start: int, count: int) -> tuple[float, float]:
    """Samples per CPU second and per wall-clock second rendering ``source[start : start + count]``.

    With one thread the CPU time is the time on one core, which does not count waiting for a busy machine.
    """
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(start, start + count):
        source[i]
    return count / (time.process_time() - cpu0), count / (time.perf_counter() - wall0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1000, help="lines to time")
    parser.add_argument("--paragraphs", type=int, default=100, help="paragraphs to time")
    parser.add_argument("--warmup", type=int, default=3000, help="lines rendered before timing")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    load_corpus("train"), list_fonts()  # one-off loading is not rendering
    print(
        f"synthetic handwriting throughput, one core (OMP_NUM_THREADS=1, cv2 threads={cv2.getNumThreads()})"
    )
    n_lines, n_paragraphs, warmup = int(args.lines), int(args.paragraphs), max(COLD, int(args.warmup))
    lines = SynthSource(kind="line", split="train", size=warmup + n_lines, seed=0)
    cold, _ = rate(lines, 0, COLD)  # a fresh process: empty glyph cache
    for i in range(COLD, warmup):
        lines[i]
    report("line", n_lines, *rate(lines, warmup, n_lines), f"{cold:.1f} cold (first {COLD} lines)")
    paragraphs = SynthSource(kind="paragraph", split="train", size=n_paragraphs, seed=0)
    report("paragraph", n_paragraphs, *rate(paragraphs, 0, n_paragraphs), "after the lines' warm-up")


def report(kind: str, count: int, per_cpu_s: float, per_wall_s: float, note: str) -> None:
    verdict = "ok" if per_cpu_s >= TARGETS[kind] else "BELOW TARGET"
    print(
        f"{kind + 's/s':>12}: {per_cpu_s:7.1f} per core-second ({per_wall_s:.1f} by the wall clock) "
        f"over {count}, {note}; target {TARGETS[kind]:.0f}: {verdict}"
    )


if __name__ == "__main__":
    main()

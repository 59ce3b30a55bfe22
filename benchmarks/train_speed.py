"""Training speed of a config on this machine: samples/s per precision, with the real data pipeline.

    python -m benchmarks.train_speed [--config configs/line.yaml] [--steps 40] [--precision 32-true ...]

Each precision runs ``steps`` optimiser steps (after 5 warm-up steps) of the config's model on batches from
its training DataLoader (synthetic lines rendered by the worker processes, as in `text-recognizer train`), and
once more on one batch held in memory, which isolates the model's forward + backward + update from loading.
Close other work first: on 2 cores anything running beside it shows in the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import torch

from text_recognizer.training.lit_module import LitRecognizer
from text_recognizer.training.train import build_modules, load_config, resolve_precision

WARMUP = 5


def _steps(lit: LitRecognizer, batches: Any, n: int, bf16: bool) -> float:
    """Seconds per sample over ``n`` optimiser steps (after :data:`WARMUP` untimed ones)."""
    opt = torch.optim.AdamW(lit.parameters(), lr=1e-3)
    lit.train()
    samples, started = 0, 0.0
    for i, (images, tokens, _) in enumerate(islice(batches, n + WARMUP)):
        if i == WARMUP:
            samples, started = 0, time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = lit._loss(images.contiguous(memory_format=lit.model.memory_format), tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        samples += images.shape[0]
    return samples / (time.perf_counter() - started)


def measure(config: Path, steps: int, precisions: list[str]) -> dict[str, Any]:
    cfg = load_config(config)
    torch.manual_seed(cfg.seed)
    dm, _ = build_modules(cfg)
    out: dict[str, Any] = {
        "config": str(config),
        "batch_size": cfg.data.batch_size,
        "num_workers": cfg.data.num_workers,
        "threads": torch.get_num_threads(),
        "auto_precision": resolve_precision("auto", "cpu"),
        "samples_per_s": {},
        "samples_per_s_model_only": {},
    }
    held = next(iter(dm.train_dataloader()))
    for precision in precisions:
        bf16 = precision.startswith("bf16")
        _, lit = build_modules(cfg)  # a fresh model for each precision
        out["samples_per_s"][precision] = round(_steps(lit, iter(dm.train_dataloader()), steps, bf16), 1)
        out["samples_per_s_model_only"][precision] = round(_steps(lit, cycle([held]), steps, bf16), 1)
        print(
            f"{precision:>10}: {out['samples_per_s'][precision]:6.1f} samples/s with the data loader, "
            f"{out['samples_per_s_model_only'][precision]:6.1f} on a batch held in memory",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=Path("configs/line.yaml"))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--precision", nargs="+", default=["32-true", "bf16-mixed"])
    args = ap.parse_args()
    print(json.dumps(measure(args.config, args.steps, args.precision)))


if __name__ == "__main__":
    main()

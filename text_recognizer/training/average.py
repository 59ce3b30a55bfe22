"""Weight averaging ("model soup"): checkpoints of one model averaged parameter by parameter.

Useful for runs of one lineage (a run and the run started from its weights): the average often reads at least
as well as either. The result is an ordinary checkpoint that ``text-recognizer stage`` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


class AverageError(ValueError):
    """The checkpoints cannot be averaged (too few, or different parameters)."""


def average_checkpoints(paths: list[Path], out: Path) -> Path:
    """Average the floating-point tensors of the checkpoints' ``state_dict`` and write ``out``.

    Everything else (the model's config in ``hyper_parameters``, counters) comes from the last checkpoint;
    optimizer and scheduler states are dropped (they belong to one run). ``averaged_from`` in the result
    lists the sources.

    Raises:
        AverageError: fewer than two checkpoints, or their parameters differ in names or shapes.
    """
    if len(paths) < 2:
        raise AverageError(f"need at least two checkpoints to average, got {len(paths)}")
    loaded: list[dict[str, Any]] = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    base = loaded[-1]
    states = [c["state_dict"] for c in loaded]
    for p, s in zip(paths, states, strict=True):
        if s.keys() != base["state_dict"].keys():
            diff = sorted(set(s) ^ set(base["state_dict"]))[:5]
            raise AverageError(f"{p}: different parameters from {paths[-1]} (e.g. {', '.join(diff)})")
        for k, v in s.items():
            if v.shape != base["state_dict"][k].shape:
                raise AverageError(
                    f"{p}: {k} is {tuple(v.shape)}, {tuple(base['state_dict'][k].shape)} in {paths[-1]}"
                )
    avg = {}
    for k, v in base["state_dict"].items():
        if v.is_floating_point():
            avg[k] = (sum(s[k].double() for s in states) / len(states)).to(v.dtype)
        else:
            avg[k] = v
    base["state_dict"] = avg
    for key in ("optimizer_states", "lr_schedulers"):
        base.pop(key, None)
    base["averaged_from"] = [str(p) for p in paths]
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(base, out)
    return out

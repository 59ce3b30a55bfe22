"""Weight averaging: the mean of each parameter, the last checkpoint's config, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from text_recognizer.training.average import AverageError, average_checkpoints


def _ckpt(path: Path, w: torch.Tensor, steps: int, **extra: object) -> Path:
    state = {"model.w": w, "model.count": torch.tensor([steps])}
    torch.save({"state_dict": state, "hyper_parameters": {"d_model": 4}, "global_step": steps, **extra}, path)
    return path


def test_the_average_is_the_mean_of_each_parameter(tmp_path: Path) -> None:
    a = _ckpt(tmp_path / "a.ckpt", torch.tensor([1.0, 2.0]), 10, optimizer_states=[{"lr": 1}])
    b = _ckpt(tmp_path / "b.ckpt", torch.tensor([3.0, 6.0]), 20, optimizer_states=[{"lr": 2}])
    out = average_checkpoints([a, b], tmp_path / "soup" / "avg.ckpt")
    got = torch.load(out, weights_only=False)
    assert torch.equal(got["state_dict"]["model.w"], torch.tensor([2.0, 4.0]))
    assert got["state_dict"]["model.count"].tolist() == [20]  # not averaged: the last checkpoint's
    assert got["global_step"] == 20 and got["hyper_parameters"] == {"d_model": 4}
    assert "optimizer_states" not in got
    assert got["averaged_from"] == [str(a), str(b)]


def test_different_models_are_refused(tmp_path: Path) -> None:
    a = _ckpt(tmp_path / "a.ckpt", torch.zeros(2), 1)
    b = _ckpt(tmp_path / "b.ckpt", torch.zeros(3), 1)
    with pytest.raises(AverageError, match=r"model\.w is"):
        average_checkpoints([a, b], tmp_path / "avg.ckpt")
    with pytest.raises(AverageError, match="at least two"):
        average_checkpoints([a], tmp_path / "avg.ckpt")
    assert not (tmp_path / "avg.ckpt").exists()

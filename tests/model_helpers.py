"""Tiny models built from the real configs, for tests (importable as ``model_helpers``)."""

from __future__ import annotations

from pathlib import Path


def tiny_model_overrides() -> dict[str, object]:
    return {
        "channels": [16, 16, 16, 16],
        "blocks": [1, 1, 1, 1],
        "d_model": 32,
        "n_heads": 2,
        "n_layers": 1,
        "ffn_dim": 64,
        "dropout": 0.0,
    }


def save_untrained_checkpoint(path: Path, max_text_len: int = 40) -> Path:
    """A Lightning checkpoint of a tiny, randomly initialised recognizer built by ``train.build_modules``."""
    import lightning as L

    from text_recognizer.data.modules import DataConfig
    from text_recognizer.training.train import TrainConfig, build_modules

    cfg = TrainConfig(data=DataConfig(max_text_len=max_text_len), model=tiny_model_overrides())
    _, lit = build_modules(cfg)
    trainer = L.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu"
    )
    trainer.strategy.connect(lit)
    trainer.save_checkpoint(path)
    return path

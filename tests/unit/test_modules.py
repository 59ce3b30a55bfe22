"""Data modules: the config that feeds the model, batches, mixtures with weights, paragraphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from text_recognizer.data.modules import DataConfig, MixtureSource, SourceSpec, TextDataModule, build_source
from text_recognizer.training.train import TrainConfig, build_model_config, load_config

REPO = Path(__file__).resolve().parents[2]


def _folder(tmp: Path, n: int = 3) -> Path:
    for i in range(n):
        Image.fromarray(np.full((30, 90), 250, np.uint8)).save(tmp / f"{i}.png")
    (tmp / "labels.jsonl").write_text(
        "".join(json.dumps({"image": f"{i}.png", "text": f"mine {i}"}) + "\n" for i in range(n))
    )
    return tmp


def test_config_feeds_the_model() -> None:
    dm = TextDataModule(DataConfig(height=32, max_text_len=50))
    c = dm.config()
    assert c["input_height"] == 32 and c["max_len"] == 52 and c["vocab"][0] == "<pad>"
    model_cfg = build_model_config(TrainConfig(), c)
    assert model_cfg.vocab_size == len(c["vocab"]) and model_cfg.max_len == 52


def test_shipped_configs_load() -> None:
    for name in ("line", "paragraph"):
        cfg = load_config(REPO / "configs" / f"{name}.yaml")
        assert cfg.data.kind == name


def test_line_batches() -> None:
    dm = TextDataModule(DataConfig(train_size=6, batch_size=3, num_workers=0, max_width=256))
    images, tokens, texts = next(iter(dm.train_dataloader()))
    assert images.shape[:3] == (3, 1, 32) and images.shape[3] % 32 == 0 and images.shape[3] <= 256
    assert tokens.shape[0] == 3 and (tokens[:, 0] == dm.vocab.bos_id).all()
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert all(isinstance(t, str) and t for t in texts)


def test_train_offset_starts_the_stream_later() -> None:
    """A run from other weights skips the samples they saw: offset 3 reads samples 3-5 of the stream."""

    def texts(**kw: int) -> list[str]:
        dm = TextDataModule(DataConfig(batch_size=3, num_workers=0, max_width=256, **kw))
        return [t for _, _, batch in dm.train_dataloader() for t in batch]

    whole, later = texts(train_size=6), texts(train_size=3, train_offset=3)
    assert later == whole[3:] and later != whole[:3]


def test_mixture_draws_from_each_source_by_weight(tmp_path: Path) -> None:
    folder = build_source(SourceSpec(name="folder", path=str(_folder(tmp_path))), "line", "train", 10, 0)
    synth = build_source(SourceSpec(name="synth"), "line", "train", 1000, 0)
    mix = MixtureSource([synth, folder], [0.75, 0.25], size=200, seed=1)
    mine = sum(mix[i].text.startswith("mine ") for i in range(200))
    assert 25 <= mine <= 75  # about a quarter
    assert [mix[i].text for i in range(5)] == [mix[i].text for i in range(5)]  # deterministic


def test_paragraph_module() -> None:
    cfg = DataConfig(
        kind="paragraph", height=128, max_width=192, max_text_len=600, batch_size=2, num_workers=0, val_size=2
    )
    images, _, texts = next(iter(TextDataModule(cfg).val_dataloader()))
    assert images.shape[:3] == (2, 1, 128)
    assert all("\n" in t for t in texts)


def test_synth_page_lines_source_gives_page_cut_lines_for_line_models_only() -> None:
    src = build_source(SourceSpec(name="synth_page_lines"), "line", "train", 10, 0)
    sample = src[0]
    assert sample.image.dtype == np.uint8 and "\n" not in sample.text
    with pytest.raises(ValueError, match=r"needs data\.kind line"):
        build_source(SourceSpec(name="synth_page_lines"), "paragraph", "train", 10, 0)

"""Lightning DataModules over any mix of sources: synthetic (default), IAM, labels.jsonl folders.

A :class:`DataConfig` names the sources of each split with weights; :meth:`TextDataModule.config` gives the
input size and vocabulary that the model is built from.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from text_recognizer.data.base import Sample, Source
from text_recognizer.images import prepare_line
from text_recognizer.vocab import PAD_ID, Vocabulary, default_vocab

log = logging.getLogger(__name__)


@dataclass
class SourceSpec:
    """One data source. ``kind`` of the data module decides lines or paragraphs.

    Attributes:
        name: ``synth``, ``synth_page_lines`` (lines cut from synthetic pages by the predictor's line finder,
            for ``kind: line``), ``iam``, ``iam_paragraphs`` (stacked IAM lines) or ``folder``.
        weight: relative sampling weight in a mixture.
        path: the folder (``folder``) or IAM root (``iam``); unused for ``synth``.
        restyle: ``folder`` only: the share of draws of a line that are that line written and photographed
            again (:class:`~text_recognizer.data.synth.dataset.Restyled`), for a few real lines; 0: none.
    """

    name: str = "synth"
    weight: float = 1.0
    path: str | None = None
    restyle: float = 0.0


@dataclass
class DataConfig:
    kind: str = "line"
    train: list[SourceSpec] = field(default_factory=lambda: [SourceSpec()])
    val: list[SourceSpec] = field(default_factory=lambda: [SourceSpec()])
    test: list[SourceSpec] = field(default_factory=lambda: [SourceSpec()])
    #: samples per training epoch (synthetic data is rendered fresh for every epoch)
    train_size: int = 8000
    val_size: int = 256
    test_size: int = 512
    height: int = 32
    max_width: int = 512
    max_text_len: int = 120
    batch_size: int = 32
    num_workers: int = 1
    seed: int = 0
    #: index of the training stream's first sample: epoch ``e`` reads from ``train_offset + e * train_size``.
    #: A run started from another run's weights (``init_from``) with the same seed re-reads that run's
    #: samples unless this skips them: set it past what the weights were trained on (steps x batch size)
    train_offset: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        d = dict(d)
        for split in ("train", "val", "test"):
            if split in d:
                d[split] = [s if isinstance(s, SourceSpec) else SourceSpec(**s) for s in d[split]]
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_source(spec: SourceSpec, kind: str, split: str, size: int, seed: int) -> Source:
    """Instantiate one source for a split. Imports each kind only when used."""
    if spec.name in ("synth", "synth_page_lines"):
        from text_recognizer.data.synth.dataset import SynthSource

        if spec.name == "synth_page_lines":
            if kind != "line":
                raise ValueError("a 'synth_page_lines' source gives lines: it needs data.kind line")
            kind = "page_line"
        return SynthSource(kind=kind, split=split, size=size, seed=seed)
    if spec.name in ("iam", "iam_paragraphs"):
        from text_recognizer.data.iam.source import IAMSource, IAMSyntheticParagraphs
        from text_recognizer.paths import iam_dir

        root = Path(spec.path) if spec.path else iam_dir()
        if spec.name == "iam_paragraphs":
            return IAMSyntheticParagraphs(IAMSource(root, "line", split), size=size, seed=seed)
        return IAMSource(root, "paragraph" if kind == "paragraph" else "line", split)
    if spec.name == "folder":
        from text_recognizer.data.folder import FolderSource

        if not spec.path:
            raise ValueError("a 'folder' source needs a path to a labels.jsonl folder")
        folder = FolderSource(Path(spec.path))
        if spec.restyle <= 0:
            return folder
        from text_recognizer.data.synth.dataset import Restyled

        return Restyled(folder, spec.restyle, seed)
    raise ValueError(
        f"unknown data source {spec.name!r}: expected synth, synth_page_lines, iam, iam_paragraphs or folder"
    )


class MixtureSource:
    """``size`` samples drawn from several sources with weights, deterministic in ``(seed, index)``."""

    def __init__(self, sources: list[Source], weights: list[float], size: int, seed: int) -> None:
        if not sources:
            raise ValueError("a mixture needs at least one source")
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"mixture weights must be non-negative and not all zero, got {weights}")
        self.sources, self.cum, self.size, self.seed = sources, np.cumsum(w / w.sum()), size, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        if len(self.sources) == 1 and len(self.sources[0]) >= self.size:
            return self.sources[0][index]
        rng = np.random.default_rng([self.seed, index])
        src = self.sources[min(int(np.searchsorted(self.cum, rng.random())), len(self.sources) - 1)]
        return src[int(rng.integers(len(src)))]


class Shifted:
    """A view of ``source`` starting at ``offset``: fresh synthetic samples every epoch."""

    def __init__(self, source: Source, offset: int, size: int) -> None:
        self.source, self.offset, self.size = source, offset, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        return self.source[(self.offset + index) % len(self.source)]


class EncodedDataset(Dataset[tuple[torch.Tensor, torch.Tensor, str]]):
    """Source -> (image ``[1, height, W]`` float, token ids ``[T]`` int64 with ``<s>``/``</s>``, text)."""

    def __init__(
        self, source: Source, vocab: Vocabulary, height: int, max_width: int, max_text_len: int
    ) -> None:
        self.source, self.vocab = source, vocab
        self.height, self.max_width, self.max_text_len = height, max_width, max_text_len

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        sample = self.source[index]
        image = prepare_line(sample.image, self.height, self.max_width)
        text = self.vocab.normalize(sample.text)[: self.max_text_len]
        ids = torch.tensor(self.vocab.encode(text), dtype=torch.long)
        return torch.from_numpy(image)[None], ids, text


def collate(
    batch: list[tuple[torch.Tensor, torch.Tensor, str]], pad_id: int = PAD_ID
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Pad images on the right to the widest (rounded up to a multiple of 32, so that few distinct shapes
    reach the convolution kernels) with background (0), and tokens with ``pad_id``.

    Returns images ``[B, 1, H, Wmax]``, tokens ``[B, Tmax]``, texts.
    """
    images, ids, texts = zip(*batch, strict=True)
    h = images[0].shape[1]
    w = max(int(im.shape[2]) for im in images)
    w = (w + 31) // 32 * 32
    out = torch.zeros(len(images), 1, h, w)
    for i, im in enumerate(images):
        out[i, :, :, : im.shape[2]] = im
    tokens = torch.full((len(ids), max(len(t) for t in ids)), pad_id, dtype=torch.long)
    for i, t in enumerate(ids):
        tokens[i, : len(t)] = t
    return out, tokens, list(texts)


class TextDataModule(L.LightningDataModule):
    """Lines (default) or paragraphs from the sources in a :class:`DataConfig`."""

    def __init__(self, cfg: DataConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or DataConfig()
        self.vocab = default_vocab()

    def config(self) -> dict[str, Any]:
        """What the model is built from: input height, maximum width and output length, vocabulary."""
        return {
            "input_height": self.cfg.height,
            "max_width": self.cfg.max_width,
            "max_len": self.cfg.max_text_len + 2,
            "vocab": self.vocab.to_list(),
            "kind": self.cfg.kind,
        }

    def _source(self, split: str, size: int) -> Source:
        specs: list[SourceSpec] = getattr(self.cfg, split)
        # each split gets its own seed stream so that val/test never repeat train indices
        seed = self.cfg.seed * 1000 + {"train": 0, "val": 1, "test": 2}[split]
        sources = [build_source(s, self.cfg.kind, split, size, seed) for s in specs]
        return MixtureSource(sources, [s.weight for s in specs], size, seed)

    def _loader(self, source: Source, shuffle: bool) -> DataLoader[Any]:
        ds = EncodedDataset(source, self.vocab, self.cfg.height, self.cfg.max_width, self.cfg.max_text_len)
        return DataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            num_workers=self.cfg.num_workers,
            collate_fn=collate,
            persistent_workers=False,
            prefetch_factor=4 if self.cfg.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        n = self.cfg.train_size
        # a virtual stream far longer than any run: epoch e reads indices [offset + e*n, offset + (e+1)*n)
        base = self._source("train", n * 10_000)
        return self._loader(Shifted(base, self.cfg.train_offset + epoch * n, n), shuffle=False)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._source("val", self.cfg.val_size), shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(self._source("test", self.cfg.test_size), shuffle=False)

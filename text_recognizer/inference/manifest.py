"""The staged artifact's format, in one place: :class:`Manifest` and its parts (standard library only).

An artifact folder (``artifacts/<name>/``) holds:

- ``encoder.onnx``: image ``[B, 1, H, W]`` -> memory ``[B, S, D]`` and, when the model has a CTC head, CTC
  logits ``[B, W/4, V]`` (format 2 returned the cross-attention keys and values instead of the memory)
- ``cross_kv.onnx``: memory ``[B, S, D]`` -> the attention decoder's cross-attention keys and values
  ``[L, B, N, S, E]``, once per batch (the CTC decoders skip it)
- ``decoder_step.onnx``: (token ``[B, 1]``, position ``[1]``, cross keys/values, past keys/values
  ``[L, B, N, T, E]``) -> (logits ``[B, V]``, present keys/values ``[L, B, N, T+1, E]``)
- ``lm.npz`` (optional): a character n-gram model of the training text for CTC beam search
  (:mod:`text_recognizer.inference.char_lm`)
- ``weights.pt`` (optional): the torch ``state_dict`` for fine-tuning (``text-recognizer finetune``);
  inference never reads it. :class:`Weights` in the manifest records it.
- ``manifest.json``: this module's :class:`Manifest`: vocabulary, preprocessing, model sizes, decoding,
  metrics, provenance and the sha256 of each file.

Staging builds a :class:`Manifest` and calls :meth:`Manifest.write`; everything that reads an artifact calls
:meth:`Manifest.read`. Like nanoGPT's ``GPTConfig`` inside its checkpoint, the manifest is the one source of
truth of how to read the model: the predictor takes every setting from it.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text_recognizer.inference.beam_search import BeamConfig

ENCODER_FILE = "encoder.onnx"
#: the attention decoder's cross-attention keys and values of the encoder's memory (format 3)
CROSS_FILE = "cross_kv.onnx"
DECODER_FILE = "decoder_step.onnx"
LM_FILE = "lm.npz"
WEIGHTS_FILE = "weights.pt"
MANIFEST_FILE = "manifest.json"
#: the decoding methods, in the order an artifact lists them
DECODERS: tuple[str, ...] = ("attention", "ctc", "ctc_lm")
#: 3: the encoder returns its ``memory`` (and ``ctc_logits``) and :data:`CROSS_FILE` turns the memory into
#: the attention decoder's cross-attention keys and values, so the CTC decoders no longer pay for them.
#: 2 (read, not written): the encoder returned ``cross_k`` and ``cross_v`` itself; metrics under their real
#: names (``monitor``, ``best``, ``final``). 1 (read): the best checkpoint's score stored as ``val/cer``
#: whatever the monitored metric was.
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
#: line batches are padded to a multiple of this width (pixels)
PAD_WIDTH_MULTIPLE = 8


class ArtifactError(RuntimeError):
    """A missing, incomplete, corrupt or unreadable artifact folder."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _build(cls: Any, d: dict[str, Any], where: str) -> Any:
    """``cls(**d)`` with the dataclass's fields only; a missing required one is an :class:`ArtifactError`."""
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in d.items() if k in names})
    except TypeError as e:
        raise ArtifactError(f"{where}: {e}") from e


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input: lines ``[input_height, w <= max_width]``, ink bright (1)."""

    input_height: int
    max_width: int
    pad_width_multiple: int = PAD_WIDTH_MULTIPLE
    polarity: str = "ink bright (1) on dark background (0)"
    steps: tuple[str, ...] = (
        "images.load_gray",
        "images.normalize_ink",
        "images.segment_lines",
        "images.prepare_line",
    )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        p = _build(cls, d, "manifest preprocessing")
        return dataclasses.replace(p, steps=tuple(p.steps))


@dataclass(frozen=True)
class ModelPart:
    """The sizes the decoding loop needs; ``other`` keeps the rest of the training ``ModelConfig``."""

    d_model: int
    n_heads: int
    n_layers: int
    max_len: int
    pad_id: int
    bos_id: int
    eos_id: int
    ctc_head: bool = True
    other: dict[str, Any] = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelPart:
        names = {f.name for f in dataclasses.fields(cls)} - {"other"}
        part: ModelPart = _build(cls, d, "manifest model")
        return dataclasses.replace(part, other={k: v for k, v in d.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {**d.pop("other"), **d}


@dataclass(frozen=True)
class LMInfo:
    """What the language model in ``lm.npz`` was built from."""

    order: int
    min_count: int
    n_grams: int
    text: str = "synthetic corpus, train split"
    max_chars: int | None = None


@dataclass(frozen=True)
class Decoding:
    """The decoders an artifact offers, the default, and what staging measured of each.

    Attributes:
        default: the decoder the predictor uses unless asked for another.
        beam: the beam search weights (``ctc_lm``) staging chose on ``beam_grid_cer``.
    """

    default: str = "attention"
    available: tuple[str, ...] = ()
    val_cer: dict[str, float] = field(default_factory=dict)
    seconds_per_line: dict[str, float] = field(default_factory=dict)
    measured_on: str | None = None
    beam: BeamConfig = field(default_factory=BeamConfig)
    beam_grid_cer: dict[str, float] = field(default_factory=dict)
    lm: LMInfo | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decoding:
        ctc_lm = d.get("ctc_lm") or {}
        lm = d.get("lm")
        return dataclasses.replace(
            _build(cls, {k: v for k, v in d.items() if k not in ("beam", "lm")}, "manifest decoding"),
            available=tuple(d.get("available", ())),
            beam=_build(BeamConfig, ctc_lm.get("config", {}), "manifest decoding.ctc_lm.config"),
            beam_grid_cer=dict(ctc_lm.get("grid_cer", {})),
            lm=_build(LMInfo, lm, "manifest decoding.lm") if lm else None,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "default": self.default,
            "available": list(self.available),
            "val_cer": self.val_cer,
            "seconds_per_line": self.seconds_per_line,
            "measured_on": self.measured_on,
            "ctc_lm": {"config": self.beam.to_dict(), "grid_cer": self.beam_grid_cer},
        }
        if self.lm is not None:
            d["lm"] = dataclasses.asdict(self.lm)
        return d


@dataclass(frozen=True)
class Calibration:
    """Raw line score (geometric mean of the character probabilities) -> expected share of correct characters.

    A non-decreasing piecewise linear map through the points ``(raw[i], share[i])`` (an isotonic fit at
    staging), flat beyond its ends. Fit with ``decoder``; the predictor applies it with that decoder only.

    Attributes:
        ece_raw, ece_calibrated: the calibration error (mean over score bins of ``|confidence - share
            correct|``, weighted by the lines in each bin) of the raw and mapped scores on ``measured_on``.
    """

    raw: tuple[float, ...]
    share: tuple[float, ...]
    decoder: str = ""
    measured_on: str = ""
    ece_raw: float | None = None
    ece_calibrated: float | None = None

    def __call__(self, score: float) -> float:
        if not self.raw:
            return score
        i = bisect.bisect_right(self.raw, score)
        if i == 0:
            return self.share[0]
        if i == len(self.raw):
            return self.share[-1]
        x0, x1, y0, y1 = self.raw[i - 1], self.raw[i], self.share[i - 1], self.share[i]
        return y0 + (y1 - y0) * (score - x0) / (x1 - x0) if x1 > x0 else y1

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        c: Calibration = _build(cls, d, "manifest calibration")
        if len(c.raw) != len(c.share) or list(c.raw) != sorted(c.raw) or list(c.share) != sorted(c.share):
            raise ArtifactError("manifest calibration: raw and share must be non-decreasing, of one length")
        return dataclasses.replace(c, raw=tuple(c.raw), share=tuple(c.share))


@dataclass(frozen=True)
class Metrics:
    """Training figures, each under the name of what it measures.

    Attributes:
        monitor: the validation metric that picked the staged checkpoint (``trainer.monitor``).
        best: that metric's value at the staged checkpoint.
        final: the run's ``final/...`` validation and test figures (registered versions only).
    """

    monitor: str | None = None
    best: float | None = None
    final: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metrics:
        return dataclasses.replace(_build(cls, d, "manifest metrics"), final=dict(d.get("final", {})))


@dataclass(frozen=True)
class Parity:
    """The check at staging that onnxruntime reproduces the torch model."""

    max_abs_logit_diff: float
    tolerance: float
    greedy_identical: bool
    n_images: int
    inputs: str = ""


@dataclass(frozen=True)
class Provenance:
    """Where the model came from: run config, checkpoint, registry entry, data, code, parity check.

    ``image_stats`` are reference statistics of raw training images for drift monitoring (``n``,
    ``width_mean``, ``height_mean``, ``brightness_mean``, ``brightness_std``, ``dark_ink_fraction``).
    """

    code_version: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""
    epoch: int | None = None
    global_step: int | None = None
    registry: dict[str, str] = field(default_factory=dict)
    data_spec: dict[str, Any] = field(default_factory=dict)
    image_stats: dict[str, float] = field(default_factory=dict)
    parity: Parity | None = None


@dataclass(frozen=True)
class Weights:
    """The torch weights shipped for fine-tuning: ``file`` holds the model's ``state_dict`` (tensors in
    ``dtype``), rebuilt from ``ModelPart.to_dict()`` as the training ``ModelConfig``."""

    file: str = WEIGHTS_FILE
    dtype: str = "float16"
    n_params: int = 0


@dataclass(frozen=True)
class Manifest:
    """Everything needed to read and trust an artifact folder. ``files``: file name -> sha256."""

    name: str
    version: str
    created: str
    vocab: tuple[str, ...]
    preprocessing: Preprocessing
    model: ModelPart
    decoding: Decoding = field(default_factory=Decoding)
    metrics: Metrics = field(default_factory=Metrics)
    provenance: Provenance = field(default_factory=Provenance)
    files: dict[str, str] = field(default_factory=dict)
    #: None: an artifact staged without weights (before they were shipped)
    weights: Weights | None = None
    #: the confidence map (absent in artifacts staged before it: the predictor reports the raw score)
    calibration: Calibration | None = None

    @property
    def has_lm(self) -> bool:
        return LM_FILE in self.files

    # ---------------------------------------------------------------------------------------- json

    def to_dict(self) -> dict[str, Any]:
        p = self.provenance
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "vocab": list(self.vocab),
            "preprocessing": {
                **dataclasses.asdict(self.preprocessing),
                "steps": list(self.preprocessing.steps),
            },
            "model": self.model.to_dict(),
            "metrics": dataclasses.asdict(self.metrics),
            "training": {
                "config": p.config,
                "checkpoint": p.checkpoint,
                "epoch": p.epoch,
                "global_step": p.global_step,
                "registry": p.registry,
            },
            "data": {"spec": p.data_spec, "image_stats": p.image_stats},
            "code_version": p.code_version,
            "parity": dataclasses.asdict(p.parity) if p.parity else None,
            "decoding": self.decoding.to_dict(),
            "files": self.files,
            **({"weights": dataclasses.asdict(self.weights)} if self.weights else {}),
            **({"calibration": dataclasses.asdict(self.calibration)} if self.calibration else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        """Parse a ``manifest.json`` of any readable format version.

        Raises:
            ArtifactError: an unknown format version or a missing part.
        """
        version = d.get("format_version")
        if version not in READABLE_VERSIONS:
            raise ArtifactError(
                f"manifest format_version {version!r} is not one this code reads ({READABLE_VERSIONS}); "
                "stage the model again with `text-recognizer stage`"
            )
        training = d.get("training") or {}
        data = d.get("data") or {}
        metrics = d.get("metrics") or {}
        if version == 1:
            metrics = _metrics_v1(metrics, training)
        try:
            parity = d.get("parity")
            return cls(
                name=d["name"],
                version=str(d["version"]),
                created=d.get("created", ""),
                vocab=tuple(d["vocab"]),
                preprocessing=Preprocessing.from_dict(d["preprocessing"]),
                model=ModelPart.from_dict(d["model"]),
                decoding=Decoding.from_dict(d.get("decoding") or {}),
                metrics=Metrics.from_dict(metrics),
                provenance=Provenance(
                    code_version=d.get("code_version", ""),
                    config=training.get("config") or {},
                    checkpoint=training.get("checkpoint", ""),
                    epoch=training.get("epoch"),
                    global_step=training.get("global_step"),
                    registry=training.get("registry") or {},
                    data_spec=data.get("spec") or {},
                    image_stats=data.get("image_stats") or {},
                    parity=_build(Parity, parity, "manifest parity") if parity else None,
                ),
                files=dict(d.get("files", {})),
                weights=_build(Weights, d["weights"], "manifest weights") if d.get("weights") else None,
                calibration=Calibration.from_dict(d["calibration"]) if d.get("calibration") else None,
            )
        except KeyError as e:
            raise ArtifactError(f"manifest has no {e.args[0]!r}") from e

    # ---------------------------------------------------------------------------------------- files

    def write(self, folder: Path) -> Path:
        """Write ``folder/manifest.json``; returns its path."""
        path = folder / MANIFEST_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def read(cls, folder: Path, verify: bool = True) -> Manifest:
        """Read ``folder/manifest.json`` and (by default) :meth:`verify` the files it lists.

        Raises:
            ArtifactError: no manifest, invalid JSON, an unreadable version, a missing or altered file.
        """
        path = folder / MANIFEST_FILE
        if not path.exists():
            raise ArtifactError(
                f"{folder}: no {MANIFEST_FILE}; stage a model with `text-recognizer stage <checkpoint>` "
                "or point --model / TEXT_RECOGNIZER_MODEL at an artifact folder"
            )
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ArtifactError(f"{path}: not valid JSON ({e})") from e
        try:
            manifest = cls.from_dict(raw)
        except ArtifactError as e:
            raise ArtifactError(f"{path}: {e}") from e
        if verify:
            manifest.verify(folder)
        return manifest

    def verify(self, folder: Path) -> None:
        """Check that every file the manifest lists is in ``folder`` with its recorded sha256.

        Raises:
            ArtifactError: a file is missing or differs, or the weights file is not among them.
        """
        if self.weights is not None and self.weights.file not in self.files:
            raise ArtifactError(
                f"{folder}: the weights file {self.weights.file} has no sha256 in the manifest"
            )
        for name, digest in self.files.items():
            f = folder / name
            if not f.exists():
                raise ArtifactError(f"{folder}: {name} listed in the manifest is missing")
            if sha256_file(f) != digest:
                raise ArtifactError(f"{f}: sha256 does not match the manifest (corrupt or replaced file)")

    def with_files(self, folder: Path, names: list[str]) -> Manifest:
        """This manifest listing ``names`` in ``folder`` with their current sha256."""
        return dataclasses.replace(self, files={n: sha256_file(folder / n) for n in names})


def _metrics_v1(metrics: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """Format 1 stored the best checkpoint's score as ``val/cer``, whatever the trainer monitored."""
    monitor = ((training.get("config") or {}).get("trainer") or {}).get("monitor", "val/cer")
    return {
        "monitor": monitor,
        "best": metrics.get("val/cer"),
        "final": {k: v for k, v in metrics.items() if k.startswith("final/")},
    }

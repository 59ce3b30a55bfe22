"""Any ``labels.jsonl`` folder as a data source: a user's own data, an evaluation set, exported corrections.

The format, used everywhere in the project::

    DIR/labels.jsonl    one JSON object a line: {"image": "<file name>", "text": "<ground truth>"}
    DIR/<file name>     the images (any format Pillow reads), in DIR or a subfolder of it

The lines of a paragraph are joined by ``\\n`` in ``text``. Blank lines in ``labels.jsonl`` are ignored; every
other line must be a valid entry, or (with ``on_error="skip"``) it is skipped, counted and reported.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from text_recognizer.data.base import Sample
from text_recognizer.images import load_gray
from text_recognizer.vocab import Vocabulary

LABELS_FILE = "labels.jsonl"
OnError = Literal["raise", "skip"]

log = logging.getLogger(__name__)


class LabelsFormatError(ValueError):
    """A malformed ``labels.jsonl``; the message starts with ``<path>:<line>:``."""


@dataclass(frozen=True)
class LabelEntry:
    """One valid line of ``labels.jsonl``: an existing image file inside the folder and its text."""

    image: Path
    text: str
    line: int


class LabelList(list[LabelEntry]):
    """The valid entries of a ``labels.jsonl``; ``skipped`` says why lines were left out (on_error="skip")."""

    def __init__(self, entries: Iterable[LabelEntry] = (), skipped: Iterable[str] = ()) -> None:
        super().__init__(entries)
        self.skipped: list[str] = list(skipped)


def path_inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` when it stays inside ``folder`` (no absolute path, no ``..`` escape), else None."""
    if os.path.isabs(name) or Path(name).drive:
        return None
    path = Path(os.path.normpath(folder / name))
    return path if path != folder and path.is_relative_to(folder) else None


def _parse_line(folder: Path, raw: bytes) -> tuple[Path, str]:
    """Validate one non-blank line; returns ``(image path, text)`` or raises ValueError(reason)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 ({e})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("image", "text") if k not in obj]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(map(repr, missing))}")
    image, text = obj["image"], obj["text"]
    if not isinstance(image, str) or not image.strip():
        raise ValueError(f"'image' must be a non-empty string, got {image!r}")
    if not isinstance(text, str):
        raise ValueError(f"'text' must be a string, got {type(text).__name__}")
    path = path_inside(folder, image)
    if path is None:
        raise ValueError(f"image {image!r} is outside the folder")
    if not path.is_file():
        raise ValueError(f"image file {image!r} not found")
    return path, text


def read_labels(folder: Path, on_error: OnError = "raise") -> LabelList:
    """Read and validate ``folder/labels.jsonl``.

    Each entry must be a JSON object with ``image`` (a non-empty file name of an existing file inside the
    folder) and ``text`` (a string). With ``on_error="raise"`` the first bad line raises
    :class:`LabelsFormatError` naming file and line; with ``"skip"`` bad lines are left out, and their
    count and first reasons are logged as a warning and kept in ``.skipped`` of the result.

    Raises:
        FileNotFoundError: the folder has no ``labels.jsonl``.
        LabelsFormatError: a bad line (``on_error="raise"``).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    folder = Path(os.path.abspath(folder))
    labels = folder / LABELS_FILE
    if not labels.is_file():
        raise FileNotFoundError(f"{labels}: no such file; a data folder needs a {LABELS_FILE} (see README)")
    entries: list[LabelEntry] = []
    skipped: list[str] = []
    for number, raw in enumerate(labels.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            image, text = _parse_line(folder, raw)
        except ValueError as e:
            reason = f"{labels}:{number}: {e}"
            if on_error == "raise":
                raise LabelsFormatError(reason) from e
            skipped.append(reason)
            continue
        entries.append(LabelEntry(image=image, text=text, line=number))
    if skipped:
        first = "; ".join(skipped[:3])
        log.warning(
            "%s: skipped %d bad line(s) of %d, first: %s",
            labels,
            len(skipped),
            len(skipped) + len(entries),
            first,
        )
    return LabelList(entries, skipped)


def write_labels(folder: Path, entries: Iterable[tuple[str | Path, str]]) -> Path:
    """Write ``folder/labels.jsonl`` from ``(image, text)`` pairs; returns its path.

    ``image`` is a file name relative to ``folder`` (or a path inside it). The images themselves are the
    caller's to write. The file is replaced atomically.
    """
    folder = Path(os.path.abspath(folder))
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for image, text in entries:
        name = os.path.relpath(image, folder) if Path(image).is_absolute() else str(image)
        if path_inside(folder, name) is None:
            raise ValueError(f"{folder}: image {str(image)!r} is not inside the folder")
        if not isinstance(text, str):
            raise TypeError(f"text for {name!r} must be a string, got {type(text).__name__}")
        lines.append(json.dumps({"image": Path(name).as_posix(), "text": text}, ensure_ascii=False))
    labels = folder / LABELS_FILE
    tmp = labels.with_name(LABELS_FILE + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(labels)
    return labels


class FolderSource:
    """A :class:`~text_recognizer.data.base.Source` over a ``labels.jsonl`` folder.

    Images are decoded lazily in ``__getitem__``; texts are normalised with :meth:`Vocabulary.normalize`.
    """

    def __init__(self, folder: Path, on_error: OnError = "raise") -> None:
        self.folder = Path(folder)
        self.labels = self.folder / LABELS_FILE
        self.entries = read_labels(self.folder, on_error=on_error)
        if not self.entries:
            raise LabelsFormatError(f"{self.labels}: no usable samples")
        self.texts = [Vocabulary.normalize(e.text) for e in self.entries]

    @property
    def skipped(self) -> list[str]:
        """Reasons for the bad lines left out (empty unless ``on_error="skip"``)."""
        return self.entries.skipped

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Sample:
        """Sample ``index``: uint8 ``[H, W]`` image and its text. Raises ImageError naming file and line."""
        entry = self.entries[index]
        image: np.ndarray = load_gray(entry.image, name=f"{entry.image} ({self.labels}:{entry.line})")
        return Sample(image=image, text=self.texts[index])

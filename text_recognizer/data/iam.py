"""The IAM Handwriting Database, for people who have it: get, verify, parse, split, crop.

The official layout (found in ``root`` or in one folder below it, as archives often add a top folder)::

    xml/<form-id>.xml         form > handwritten-part > line(id, text) > word > cmp(x, y, width, height)
    forms/<form-id>.png       the scanned forms (or formsA-D/, formsE-H/, formsI-Z/ as the tarballs unpack)
    task/trainset.txt         the Large Writer Independent Text Line Recognition Task: line ids a line;
    task/validationset1.txt   also found in root or largeWriterIndependentTextLineRecognitionTask/
    task/validationset2.txt
    task/testset.txt

A line's box is the union of its words' ``cmp`` boxes, a paragraph's the union of its lines'. Splits are
mapped at form level (val = validationset1 + validationset2). Without the task files, forms are split by
writer, deterministically, so that no writer is in two splits.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from text_recognizer.data.base import Sample, Source
from text_recognizer.data.folder import path_inside
from text_recognizer.images import load_gray
from text_recognizer.paths import iam_dir
from text_recognizer.vocab import Vocabulary

Kind = Literal["line", "paragraph"]
SPLITS = ("train", "val", "test")
SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": ("trainset.txt",),
    "val": ("validationset1.txt", "validationset2.txt"),
    "test": ("testset.txt",),
}
SPLIT_DIRS = (".", "task", "largeWriterIndependentTextLineRecognitionTask")
FORM_DIRS = ("forms", "formsA-D", "formsE-H", "formsI-Z")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Fractions of writers for val and test in the fallback split (close to the official task's proportions).
WRITER_SPLIT = {"val": 0.15, "test": 0.15}
CROP_PADDING = 12  # pixels around a line or paragraph box, at the scan's 300 dpi
FORM_CACHE = 2  # decoded forms kept per source (lines of one form are read together)
DOWNLOAD_TIMEOUT_S = 60
CHUNK = 1 << 20

log = logging.getLogger(__name__)


class IAMError(ValueError):
    """Missing or malformed IAM data, a failed download or an unsafe archive; the message names the file."""


@dataclass(frozen=True)
class Box:
    """Pixel rows ``top:bottom`` and columns ``left:right`` of a form image (exclusive ends)."""

    top: int
    bottom: int
    left: int
    right: int

    def union(self, other: Box) -> Box:
        return Box(
            min(self.top, other.top),
            max(self.bottom, other.bottom),
            min(self.left, other.left),
            max(self.right, other.right),
        )


@dataclass(frozen=True)
class IAMItem:
    """One line or paragraph of a form: its id, the form it is cut from, the writer, text and box."""

    id: str
    form: str
    writer: str
    text: str
    box: Box


@dataclass(frozen=True)
class IAMForm:
    """A parsed form: its lines (in page order) and its split (None: in none of the task's split files)."""

    id: str
    writer: str
    image: Path
    lines: tuple[IAMItem, ...]
    split: str | None = None

    def paragraph(self) -> IAMItem:
        """The handwritten part as one item: the union of the line boxes, texts joined by ``\\n``."""
        box = self.lines[0].box
        for line in self.lines[1:]:
            box = box.union(line.box)
        return IAMItem(self.id, self.id, self.writer, "\n".join(li.text for li in self.lines), box)


@dataclass(frozen=True)
class IAMLayout:
    """What :func:`find_layout` found under a root: form id -> XML file and form id -> image."""

    base: Path
    xml: dict[str, Path]
    images: dict[str, Path]
    split_files: dict[str, Path]

    def problems(self) -> list[str]:
        """What is missing for a usable data set, in words (empty when usable)."""
        out = []
        if not self.xml:
            out.append(f"{self.base}/xml/<form-id>.xml: no XML files")
        if not self.images:
            out.append(f"{self.base}/{{{','.join(FORM_DIRS)}}}/<form-id>.png: no form images")
        elif self.xml and not self.xml.keys() & self.images.keys():
            out.append(f"{self.base}: no form has both an XML file and an image")
        names = [n for names in SPLIT_FILES.values() for n in names]
        if self.split_files and len(self.split_files) < len(names):
            missing = [n for n in names if n not in self.split_files]
            out.append(f"{self.base}/task/: split files {', '.join(missing)} (found only some of them)")
        return out


def find_layout(root: Path) -> IAMLayout:
    """Look for the official layout in ``root`` or one folder below it."""
    root = Path(root)
    bases = [root, *sorted(d for d in root.iterdir() if d.is_dir())] if root.is_dir() else [root]
    base = next((b for b in bases if (b / "xml").is_dir()), root)
    xml = {p.stem: p for p in sorted((base / "xml").glob("*.xml"))}
    images: dict[str, Path] = {}
    for name in FORM_DIRS:
        if (base / name).is_dir():
            for p in sorted((base / name).iterdir()):
                if p.suffix.lower() in IMAGE_SUFFIXES:
                    images.setdefault(p.stem, p)
    split_files = {
        n: base / d / n
        for names in SPLIT_FILES.values()
        for n in names
        for d in reversed(SPLIT_DIRS)
        if (base / d / n).is_file()
    }
    return IAMLayout(base, xml, images, split_files)


def _require(layout: IAMLayout) -> None:
    problems = layout.problems()
    if problems:
        raise IAMError(
            "IAM data set incomplete; missing:\n  "
            + "\n  ".join(problems)
            + "\nPrepare it with `text-recognizer data iam --source URL-or-DIR`."
        )


def _cmp_box(cmp: ET.Element, where: str) -> Box:
    try:
        x, y, w, h = (int(cmp.attrib[k]) for k in ("x", "y", "width", "height"))
    except (KeyError, ValueError) as e:
        raise IAMError(f"{where}: bad cmp element {cmp.attrib} ({type(e).__name__}: {e})") from e
    return Box(y, y + h, x, x + w)


def parse_form(xml_path: Path) -> tuple[str, str, list[IAMItem], list[str]]:
    """Parse one form's XML.

    Returns:
        ``(form id, writer id, lines, skipped)``: the lines with at least one word box, and the ids of lines
        left out because they have none. The writer is the form id when the XML names none.
    Raises:
        IAMError: malformed XML, a line without id or text, or a cmp without integer coordinates.
    """
    try:
        form = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise IAMError(f"{xml_path}: not valid XML ({e})") from e
    if form.tag != "form":
        raise IAMError(f"{xml_path}: root element is <{form.tag}>, expected <form>")
    form_id = form.get("id") or xml_path.stem
    writer = form.get("writer-id") or form_id
    lines: list[IAMItem] = []
    skipped: list[str] = []
    for line in form.iterfind("handwritten-part/line"):
        line_id, text = line.get("id"), line.get("text")
        if not line_id or text is None:
            raise IAMError(f"{xml_path}: a <line> without 'id' or 'text' ({dict(line.attrib)})")
        boxes = [_cmp_box(c, f"{xml_path}: line {line_id}") for c in line.iterfind("word/cmp")]
        if not boxes:
            skipped.append(line_id)
            continue
        box = boxes[0]
        for b in boxes[1:]:
            box = box.union(b)
        lines.append(IAMItem(line_id, form_id, writer, Vocabulary.normalize(text), box))
    return form_id, writer, lines, skipped


@functools.lru_cache(maxsize=4)
def load_forms(root: Path) -> tuple[IAMForm, ...]:
    """All usable forms under ``root`` with their splits (cached per process); what is left out is logged."""
    layout = find_layout(root)
    _require(layout)
    forms: list[IAMForm] = []
    no_image, no_lines, no_box = [], [], []
    for form_id, xml_path in tqdm(layout.xml.items(), desc="IAM xml", unit="form", leave=False):
        fid, writer, lines, skipped = parse_form(xml_path)
        no_box.extend(skipped)
        image = layout.images.get(form_id)
        if image is None:
            no_image.append(form_id)
        elif not lines:
            no_lines.append(form_id)
        else:
            forms.append(IAMForm(fid, writer, image, tuple(lines)))
    for what, ids in (("no form image", no_image), ("no usable line", no_lines), ("no word boxes", no_box)):
        if ids:
            log.warning("IAM %s: skipped %d with %s (%s)", layout.base, len(ids), what, ", ".join(ids[:5]))
    split_of = assign_splits(forms, layout.split_files)
    unsplit = [f.id for f in forms if f.id not in split_of]
    if unsplit:
        log.warning(
            "IAM %s: %d forms are in none of the task's split files, left out", layout.base, len(unsplit)
        )
    return tuple(dataclasses.replace(f, split=split_of.get(f.id)) for f in forms)


def _form_of(line_id: str) -> str:
    return "-".join(line_id.split("-")[:2])


def assign_splits(forms: Sequence[IAMForm], split_files: dict[str, Path]) -> dict[str, str]:
    """Form id -> ``train``/``val``/``test``.

    From the task's split files when present (forms in none of them are left out; a form listed in two goes to
    the later of train, val, test); otherwise by writer: writers ordered by a hash of their id, the first
    ``WRITER_SPLIT['test']`` of them to test, the next ``WRITER_SPLIT['val']`` to val, the rest to train.
    """
    if split_files:
        out: dict[str, str] = {}
        for split in SPLITS:
            for name in SPLIT_FILES[split]:
                lines = split_files[name].read_text(encoding="utf-8").split()
                out.update({_form_of(li): split for li in lines})
        return out
    writers = sorted({f.writer for f in forms}, key=lambda w: hashlib.sha256(w.encode()).hexdigest())
    n = len(writers)
    n_test = max(1, round(WRITER_SPLIT["test"] * n)) if n >= 3 else 0
    n_val = max(1, round(WRITER_SPLIT["val"] * n)) if n >= 3 else 0
    split_of = {
        w: "test" if i < n_test else "val" if i < n_test + n_val else "train" for i, w in enumerate(writers)
    }
    log.warning(
        "IAM: no task split files (trainset.txt, ...); split %d writers by id: %d train, %d val, %d test",
        n,
        n - n_test - n_val,
        n_val,
        n_test,
    )
    return {f.id: split_of[f.writer] for f in forms}


class IAMSource:
    """IAM lines or paragraphs of one split, cropped from the form images on demand.

    ``__getitem__`` gives a uint8 ``[H, W]`` crop (dark ink on light paper, 300 dpi) and its text. Crops are
    written to ``<root>/crops/<kind>/`` the first time they are read (when ``cache``), so later epochs do not
    decode whole forms.
    """

    def __init__(
        self, root: Path | None = None, kind: Kind = "line", split: str = "train", cache: bool = True
    ) -> None:
        if kind not in ("line", "paragraph"):
            raise ValueError(f"kind must be 'line' or 'paragraph', got {kind!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root) if root is not None else iam_dir()
        self.kind, self.split = kind, split
        self.forms = {f.id: f for f in load_forms(self.root) if f.split == split}
        self.items: list[IAMItem] = [
            item for f in self.forms.values() for item in (f.lines if kind == "line" else (f.paragraph(),))
        ]
        if not self.items:
            raise IAMError(f"{self.root}: no IAM {kind}s in split {split!r}")
        self.cache_dir: Path | None = self.root / "crops" / kind if cache else None
        self._decoded: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        item = self.items[index]
        return Sample(image=self._crop(item), text=item.text)

    def _form_image(self, form_id: str) -> np.ndarray:
        if form_id not in self._decoded:
            self._decoded[form_id] = load_gray(self.forms[form_id].image)
            while len(self._decoded) > FORM_CACHE:
                self._decoded.popitem(last=False)
        self._decoded.move_to_end(form_id)
        return self._decoded[form_id]

    def _crop(self, item: IAMItem) -> np.ndarray:
        """The item's box plus ``CROP_PADDING``: uint8 ``[H, W]``."""
        cached = self.cache_dir / f"{item.id}.png" if self.cache_dir else None
        if cached is not None and cached.is_file():
            return load_gray(cached)
        page = self._form_image(item.form)
        h, w = page.shape
        b = item.box
        if b.bottom > h or b.right > w or b.top < 0 or b.left < 0:
            raise IAMError(
                f"{self.forms[item.form].image}: box of {item.id} {b} lies outside the {w}x{h} image "
                "(the XML coordinates are for the full-size 300 dpi scan)"
            )
        p = CROP_PADDING
        crop = page[max(0, b.top - p) : min(h, b.bottom + p), max(0, b.left - p) : min(w, b.right + p)].copy()
        if cached is not None:
            self._store(cached, crop)
        return crop

    def _store(self, path: Path, crop: np.ndarray) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.png")
            Image.fromarray(crop).save(tmp)
            tmp.replace(path)
        except OSError as e:
            log.warning(
                "IAM: cannot cache crops in %s (%s); reading from the forms each time", path.parent, e
            )
            self.cache_dir = None


class IAMSyntheticParagraphs:
    """Paragraphs made by stacking real line crops vertically, with small random spacing and indent.

    Sample ``i`` is a pure function of ``(seed, i)``: a uint8 ``[H, W]`` image and the lines' texts joined
    by ``\\n``.
    """

    def __init__(
        self, line_source: Source, size: int, seed: int = 0, lines_range: tuple[int, int] = (3, 12)
    ) -> None:
        if len(line_source) == 0:
            raise ValueError("line_source is empty")
        if not 1 <= lines_range[0] <= lines_range[1]:
            raise ValueError(f"lines_range must be (low, high) with 1 <= low <= high, got {lines_range}")
        self.lines, self.size, self.seed, self.lines_range = line_source, size, seed, lines_range

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} paragraphs")
        index %= self.size
        rng = np.random.default_rng((self.seed, index))
        n = int(rng.integers(self.lines_range[0], self.lines_range[1] + 1))
        picks = rng.choice(len(self.lines), size=n, replace=n > len(self.lines))
        samples = [self.lines[int(i)] for i in picks]
        line_h = int(np.median([s.image.shape[0] for s in samples]))
        gaps = rng.integers(0, max(1, line_h // 4) + 1, size=n)
        gaps[0] = 0
        indents = rng.integers(0, max(1, line_h // 2) + 1, size=n)
        height = int(sum(s.image.shape[0] for s in samples) + gaps.sum())
        width = int(max(s.image.shape[1] + ind for s, ind in zip(samples, indents, strict=True)))
        border = np.concatenate([np.r_[s.image[0], s.image[-1]] for s in samples])
        canvas = np.full((height, width), int(np.median(border)), dtype=np.uint8)
        y = 0
        for s, gap, ind in zip(samples, gaps, indents, strict=True):
            y += int(gap)
            h, w = s.image.shape
            canvas[y : y + h, int(ind) : int(ind) + w] = s.image
            y += h
        return Sample(image=canvas, text="\n".join(s.text for s in samples))


# ----------------------------------------------------------------------------------------- preparation


def prepare_iam(source: str, sha256: str | None = None, out: Path | None = None) -> Path:
    """Make IAM usable at ``out`` (default :func:`text_recognizer.paths.iam_dir`); returns the data root.

    ``source`` is an ``http(s)://`` (or ``file://``) URL of a ``.zip``/``.tar.gz`` archive, streamed to disk,
    checked against ``sha256`` when given, and unpacked into ``out`` (no member may land outside it; run again
    with further archives to add forms); or a local directory with the official layout, which ``out`` then
    links to.

    Raises:
        IAMError: download failure, sha256 mismatch (the download is deleted), unsafe archive, or an
            incomplete layout (the message lists what is missing).
    """
    out = Path(os.path.abspath(out if out is not None else iam_dir()))
    if re.match(r"^(https?|file)://", source):
        archive = _download(source, out / "downloads", sha256)
        try:
            _extract(archive, out)
        finally:
            archive.unlink(missing_ok=True)
        root = out
    else:
        local = Path(source).expanduser()
        if not local.is_dir():
            raise IAMError(f"{source}: neither an http(s) URL nor an existing directory")
        if sha256:
            log.warning("--sha256 checks downloads only; ignored for the local directory %s", local)
        layout = find_layout(local)
        _require(layout)
        root = local if local.resolve() == out.resolve() else _link_layout(layout, out)
    load_forms.cache_clear()
    forms = load_forms(root)
    counts = Counter(f.split or "none" for f in forms)
    n_lines = sum(len(f.lines) for f in forms)
    print(
        f"IAM ready in {root}: {len(forms)} forms, {n_lines} lines; forms per split: "
        + ", ".join(f"{s} {counts[s]}" for s in (*SPLITS, "none") if counts[s])
    )
    return root


def _link_layout(layout: IAMLayout, out: Path) -> Path:
    """Symlink the parts of a local layout into ``out`` (xml/, form folders, task/ files)."""
    links = {out / "xml": layout.base / "xml"}
    for name in FORM_DIRS:
        if (layout.base / name).is_dir():
            links[out / name] = layout.base / name
    for name, path in layout.split_files.items():
        links[out / "task" / name] = path
    for link, target in links.items():
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            raise IAMError(f"{link} already exists and is not a link; remove it or choose another --out")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target.resolve())
    return out


def _download(url: str, dest_dir: Path, sha256: str | None) -> Path:
    """Stream ``url`` to ``dest_dir`` with a progress bar and check its sha256; returns the file."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = Path(urllib.parse.urlparse(url).path).name or "iam-archive"
    part = dest_dir / f"{name}.part"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp, part.open("wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=name) as bar:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        raise IAMError(f"{url}: download failed ({e})") from e
    got = digest.hexdigest()
    if sha256 is not None and got != sha256.strip().lower():
        part.unlink()
        raise IAMError(
            f"{url}: sha256 mismatch: expected {sha256.strip()}, got {got}; the download was deleted"
        )
    if sha256 is None:
        log.warning("%s: no --sha256 given; this archive's sha256 is %s", url, got)
    path = dest_dir / name
    part.replace(path)
    return path


def _unsafe(out: Path, name: str) -> bool:
    return os.path.normpath(out / name) != str(out) and path_inside(out, name) is None


def _extract(archive: Path, out: Path) -> None:
    """Unpack a zip or tar archive into ``out``, refusing members that would land outside it or are links."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
            for info in infos:
                if _unsafe(out, info.filename):
                    raise IAMError(f"{archive}: unsafe member {info.filename!r} (outside the target folder)")
            for info in tqdm(infos, desc=f"unpack {archive.name}", unit="file"):
                z.extract(info, out)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = t.getmembers()
            for m in members:
                if _unsafe(out, m.name) or not (m.isfile() or m.isdir()):
                    raise IAMError(
                        f"{archive}: unsafe member {m.name!r} (outside the target folder, or a link)"
                    )
            for m in tqdm(members, desc=f"unpack {archive.name}", unit="file"):
                t.extract(m, out, filter="data")
    else:
        raise IAMError(f"{archive}: not a zip or tar archive")

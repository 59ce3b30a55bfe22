"""Where the IAM files are: the official layout under a root (or one folder below it), and what is missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")
SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": ("trainset.txt",),
    "val": ("validationset1.txt", "validationset2.txt"),
    "test": ("testset.txt",),
}
SPLIT_DIRS = (".", "task", "largeWriterIndependentTextLineRecognitionTask")
FORM_DIRS = ("forms", "formsA-D", "formsE-H", "formsI-Z")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


class IAMError(ValueError):
    """Missing or malformed IAM data, a failed download or an unsafe archive; the message names the file."""


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


def require_layout(layout: IAMLayout) -> None:
    """Raise :class:`IAMError` listing what ``layout`` lacks, if anything."""
    problems = layout.problems()
    if problems:
        raise IAMError(
            "IAM data set incomplete; missing:\n  "
            + "\n  ".join(problems)
            + "\nPrepare it with `text-recognizer data iam --source URL-or-DIR`."
        )

"""Which split each form is in (the task's split files, else by writer), and the cached index of forms."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from text_recognizer.data.iam.forms import IAMForm, parse_form
from text_recognizer.data.iam.layout import SPLIT_FILES, SPLITS, find_layout, require_layout

#: Fractions of writers for val and test in the fallback split (close to the official task's proportions).
WRITER_SPLIT = {"val": 0.15, "test": 0.15}

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def load_forms(root: Path) -> tuple[IAMForm, ...]:
    """All usable forms under ``root`` with their splits (cached per process); what is left out is logged."""
    layout = find_layout(root)
    require_layout(layout)
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

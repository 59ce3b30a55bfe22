"""``text-recognizer synth``: write synthetic labels.jsonl sets, list the fonts, draw a contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from text_recognizer.data.synth.corpus import SPLITS
from text_recognizer.data.synth.dataset import KINDS, SynthSource
from text_recognizer.data.synth.fonts import list_font_families

LABELS_FILE = "labels.jsonl"
SHEET_WIDTH = 1600
SHEET_LINES = 24
SHEET_PARAGRAPHS = 4
_PAD = 12
_CAPTION_PX = 14


def run_synth(
    kind: str,
    split: str,
    count: int,
    seed: int,
    out: Path | None,
    list_fonts: bool,
    preview: Path | None,
) -> None:
    """The ``synth`` command: list fonts, write a preview sheet and/or write a data set to ``out``."""
    if list_fonts:
        for family in list_font_families():
            print(family)
        return
    if kind not in KINDS:
        raise typer.BadParameter(f"{kind!r} is not one of {', '.join(KINDS)}", param_hint="--kind")
    if split not in SPLITS:
        raise typer.BadParameter(f"{split!r} is not one of {', '.join(SPLITS)}", param_hint="--split")
    if out is None and preview is None:
        raise typer.BadParameter("give --out DIR to write a data set (or --preview FILE.png, --list-fonts)")
    if preview is not None:
        write_preview(preview, split=split, seed=seed)
        print(f"wrote {preview}")
    if out is not None:
        write_set(out, SynthSource(kind=kind, split=split, size=count, seed=seed))
        print(f"wrote {count} {kind} images and {out / LABELS_FILE}")


def write_set(out: Path, source: SynthSource) -> None:
    """Render every sample of ``source`` to ``out/NNNNNN.png`` and list them in ``out/labels.jsonl``."""
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} exists and is not a folder", param_hint="--out")
    out.mkdir(parents=True, exist_ok=True)
    labels = out / (LABELS_FILE + ".partial")
    with labels.open("w") as f:
        for i in tqdm(range(len(source)), desc=f"synth {source.kind} {source.split}", unit="img"):
            sample = source[i]
            name = f"{i:06d}.png"
            Image.fromarray(sample.image).save(out / name, compress_level=1)
            record: dict[str, object] = {"image": name, "text": sample.text}
            if sample.lines:  # paragraphs: each line's ink box, [top, bottom, left, right]
                record["lines"] = [list(box) for box in sample.lines]
            f.write(json.dumps(record) + "\n")
    labels.replace(out / LABELS_FILE)


def _caption_font(size: int = _CAPTION_PX) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit(image: np.ndarray, max_w: int, max_h: int) -> Image.Image:
    """uint8 ``[H, W]`` -> PIL image scaled down (never up) to fit ``max_w`` x ``max_h``."""
    img = Image.fromarray(image)
    scale = min(1.0, max_w / img.width, max_h / img.height)
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    return img


def _cell(image: np.ndarray, caption: str, max_w: int, max_h: int) -> Image.Image:
    """One sample with its (possibly multi-line) text caption under it, on white."""
    img = _fit(image, max_w, max_h)
    font = _caption_font()
    n_lines = caption.count("\n") + 1
    cell = Image.new("L", (max_w, img.height + 4 + n_lines * (_CAPTION_PX + 3)), 255)
    cell.paste(img, (0, 0))
    ImageDraw.Draw(cell).multiline_text((0, img.height + 3), caption, fill=40, font=font, spacing=3)
    return cell


def contact_sheet(split: str = "train", seed: int = 0) -> Image.Image:
    """``SHEET_LINES`` lines in two columns and a row of ``SHEET_PARAGRAPHS`` paragraphs, captioned."""
    lines = SynthSource("line", split, SHEET_LINES, seed)
    paragraphs = SynthSource("paragraph", split, SHEET_PARAGRAPHS, seed)
    col_w = (SHEET_WIDTH - 3 * _PAD) // 2
    line_cells = [_cell(s.image, s.text, col_w, 70) for s in (lines[i] for i in range(len(lines)))]
    par_w = (SHEET_WIDTH - (SHEET_PARAGRAPHS + 1) * _PAD) // SHEET_PARAGRAPHS
    par_cells = [_cell(s.image, s.text, par_w, 520) for s in (paragraphs[i] for i in range(len(paragraphs)))]
    rows = [line_cells[i : i + 2] for i in range(0, len(line_cells), 2)]
    height = sum(max(c.height for c in row) + _PAD for row in rows) + _PAD
    height += max(c.height for c in par_cells) + _PAD
    sheet = Image.new("L", (SHEET_WIDTH, height), 255)
    y = _PAD
    for row in rows:
        for j, c in enumerate(row):
            sheet.paste(c, (_PAD + j * (col_w + _PAD), y))
        y += max(c.height for c in row) + _PAD
    for j, c in enumerate(par_cells):
        sheet.paste(c, (_PAD + j * (par_w + _PAD), y))
    return sheet


def write_preview(path: Path, split: str = "train", seed: int = 0) -> None:
    """Write :func:`contact_sheet` to ``path`` (PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(split, seed).save(path)

"""A tiny fake IAM Handwriting Database in the official layout, generated for tests (no real IAM data).

Forms are white pages with lines of text drawn by Pillow; the XML gives each word's ``cmp`` box as drawn, so
line and paragraph crops can be checked exactly. Texts are invented and include XML entities (``&quot;``,
``&amp;``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

PAGE = (900, 700)  # width, height
MARGIN = 60
LINE_STEP = 70
FONT_SIZE = 28

TEXTS = (
    'She said "wait & see" today.',
    "The river ran past 42 old mills.",
    "A quiet lamp; seven blue chairs!",
    "Numbers like 3.14 and 1,000 (maybe).",
    "Rain fell on the long grey road.",
    "He wrote: it's done, at last.",
)


@dataclass
class FakeIAM:
    """What was generated: the root, and per form its writer, line ids, texts and line boxes."""

    root: Path
    writer: dict[str, str] = field(default_factory=dict)
    lines: dict[str, list[tuple[str, str, tuple[int, int, int, int]]]] = field(default_factory=dict)
    """form id -> [(line id, text, (top, bottom, left, right))]"""


def make_fake_iam(
    root: Path,
    writers: int = 5,
    forms_per_writer: int = 2,
    lines_per_form: int = 3,
    split_files: bool = True,
    forms_dir: str = "forms",
) -> FakeIAM:
    """Write ``root/xml/*.xml``, ``root/<forms_dir>/*.png`` and (when ``split_files``) ``root/task/*.txt``.

    Writers are split by index: the first half-ish to train, then one to validationset1, one to
    validationset2, and the last to test.
    """
    font = ImageFont.load_default(size=FONT_SIZE)
    fake = FakeIAM(root)
    (root / "xml").mkdir(parents=True)
    (root / forms_dir).mkdir()
    k = 0
    for w in range(writers):
        for f in range(forms_per_writer):
            form_id = f"{'abcdefgh'[w % 8]}{w:02d}-{f:03d}{'u' if f % 2 else ''}"
            writer = f"{w:03d}"
            page = Image.new("L", PAGE, 255)
            draw = ImageDraw.Draw(page)
            form = ET.Element("form", {"id": form_id, "writer-id": writer})
            printed = ET.SubElement(form, "machine-printed-part")
            ET.SubElement(printed, "machine-print-line", {"text": "printed prompt, not read"})
            hand = ET.SubElement(form, "handwritten-part")
            lines = []
            for li in range(lines_per_form):
                text = TEXTS[k % len(TEXTS)]
                k += 1
                line_id = f"{form_id}-{li:02d}"
                line = ET.SubElement(hand, "line", {"id": line_id, "text": text})
                x, y = MARGIN + 10 * li, MARGIN + LINE_STEP * li
                top, bottom, left, right = PAGE[1], 0, PAGE[0], 0
                for wi, word in enumerate(text.split(" ")):
                    x0, y0, x1, y1 = (round(v) for v in draw.textbbox((x, y), word, font=font))
                    draw.text((x, y), word, fill=20, font=font)
                    el = ET.SubElement(line, "word", {"id": f"{line_id}-{wi:02d}", "text": word})
                    ET.SubElement(
                        el, "cmp", {"x": str(x0), "y": str(y0), "width": str(x1 - x0), "height": str(y1 - y0)}
                    )
                    top, bottom, left, right = min(top, y0), max(bottom, y1), min(left, x0), max(right, x1)
                    x = x1 + 14
                lines.append((line_id, text, (top, bottom, left, right)))
            page.save(root / forms_dir / f"{form_id}.png")
            ET.ElementTree(form).write(
                root / "xml" / f"{form_id}.xml", encoding="ISO-8859-1", xml_declaration=True
            )
            fake.writer[form_id] = writer
            fake.lines[form_id] = lines
    if split_files:
        files: dict[str, list[str]] = {
            n: [] for n in ("trainset.txt", "validationset1.txt", "validationset2.txt", "testset.txt")
        }
        for form_id, writer in fake.writer.items():
            w = int(writer)
            name = {
                writers - 1: "testset.txt",
                writers - 2: "validationset2.txt",
                writers - 3: "validationset1.txt",
            }.get(w, "trainset.txt")
            files[name] += [line_id for line_id, _, _ in fake.lines[form_id]]
        (root / "task").mkdir()
        for name, ids in files.items():
            (root / "task" / name).write_text("\n".join(ids) + "\n")
    return fake

"""The forms' XML: lines with their texts, writers and boxes (the union of their words' ``cmp`` boxes)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from text_recognizer.data.iam.layout import IAMError
from text_recognizer.vocab import Vocabulary


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

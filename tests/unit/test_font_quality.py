"""The automatic font rule: it keeps real handwriting fonts and rejects each kind of unusable font."""

from __future__ import annotations

import io

import pytest
from fontTools.ttLib import TTFont

from text_recognizer.data.synth.assets import detokenize_brown
from text_recognizer.data.synth.font_quality import assess_font
from text_recognizer.data.synth.fonts import list_fonts


def _font(family: str) -> bytes:
    return next(f.path.read_bytes() for f in list_fonts() if f.family == family)


def _edited(data: bytes, edit: str) -> bytes:
    """A copy of a font with its character map edited: ``no-percent`` drops ``%``; ``small-caps`` maps every
    lowercase letter to its capital's glyph (as unicase and small-caps fonts do)."""
    font = TTFont(io.BytesIO(data))
    for table in font["cmap"].tables:
        if not table.isUnicode():
            continue
        if edit == "no-percent":
            table.cmap.pop(ord("%"), None)
        elif edit == "small-caps":
            for c in "abcdefghijklmnopqrstuvwxyz":
                if ord(c.upper()) in table.cmap:
                    table.cmap[ord(c)] = table.cmap[ord(c.upper())]
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@pytest.mark.parametrize("family", ["caveat", "indie-flower", "dancing-script"])
def test_ordinary_handwriting_fonts_pass(family: str) -> None:
    q = assess_font(_font(family))
    assert q.reason is None
    assert 0.2 < q.x_height < 0.8
    assert 0.03 < q.stroke < 0.4


def test_a_missing_character_rejects_the_font() -> None:
    q = assess_font(_edited(_font("caveat"), "no-percent"))
    assert q.reason is not None and "printable ASCII" in q.reason and "%" in q.reason


def test_capitals_for_lowercase_reject_the_font() -> None:
    q = assess_font(_edited(_font("indie-flower"), "small-caps"))
    assert q.reason is not None and "letter case" in q.reason


def test_cursive_fonts_are_told_from_print() -> None:
    assert assess_font(_font("dancing-script")).joined
    assert not assess_font(_font("indie-flower")).joined


def test_brown_sentences_are_detokenized() -> None:
    tagged = "He/pps said/vbd ,/, ``/`` I/ppss wish/vb it/pps (/( really/rb )/) doesn't/doz* ''/'' ./."
    assert detokenize_brown(tagged) == 'He said, "I wish it (really) doesn\'t".'

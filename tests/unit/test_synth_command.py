"""``text-recognizer synth``: the labels.jsonl folder, the font list and the contact sheet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from text_recognizer.data.synth.command import run_synth
from text_recognizer.data.synth.dataset import SynthSource
from text_recognizer.images import load_gray


def _run(**kw: object) -> None:
    args: dict[str, object] = dict(
        kind="line", split="val", count=3, seed=0, out=None, list_fonts=False, preview=None
    )
    args.update(kw)
    run_synth(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["line", "paragraph"])
def test_writes_a_valid_labels_jsonl_folder(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "set"
    _run(kind=kind, count=3, seed=4, out=out)
    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [r["image"] for r in rows] == ["000000.png", "000001.png", "000002.png"]
    expected = SynthSource(kind, "val", 3, 4)
    for i, r in enumerate(rows):
        assert set(r) == ({"image", "text", "lines"} if kind == "paragraph" else {"image", "text"})
        assert r["text"] == expected[i].text
        image = load_gray(out / r["image"])
        assert image.shape == expected[i].image.shape
        assert ("\n" in r["text"]) == (kind == "paragraph")
    assert not list(out.glob("*.partial"))


def test_list_fonts_prints_one_family_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    _run(list_fonts=True)
    families = capsys.readouterr().out.split()
    assert len(families) >= 30
    assert "caveat" in families


def test_preview_writes_a_contact_sheet(tmp_path: Path) -> None:
    sheet = tmp_path / "sub" / "sheet.png"
    _run(preview=sheet)
    image = load_gray(sheet)
    assert image.shape[1] == 1600 and image.shape[0] > 800


@pytest.mark.parametrize(
    ("kw", "hint"),
    [
        ({"kind": "word", "out": Path("x")}, "--kind"),
        ({"split": "dev", "out": Path("x")}, "--split"),
        ({}, "--out"),
    ],
)
def test_bad_options_are_clear_errors(kw: dict[str, object], hint: str) -> None:
    with pytest.raises(typer.BadParameter) as err:
        _run(**kw)
    assert hint in err.value.format_message()

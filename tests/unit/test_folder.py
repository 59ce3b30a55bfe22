"""labels.jsonl folders: reading, validation errors naming file and line, skip mode, writing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from text_recognizer.data.folder import (
    FolderSource,
    LabelsFormatError,
    read_labels,
    write_labels,
)
from text_recognizer.images import ImageError


def _image(path: Path, width: int = 40, height: int = 20, value: int = 200) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width), value, dtype=np.uint8)).save(path)


def _folder(tmp_path: Path, lines: list[str], images: tuple[str, ...] = ("a.png", "b.png")) -> Path:
    for name in images:
        _image(tmp_path / name)
    (tmp_path / "labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def test_good_folder(tmp_path: Path) -> None:
    _image(tmp_path / "sub" / "c.jpg", width=30, height=10)
    folder = _folder(
        tmp_path,
        [
            json.dumps({"image": "a.png", "text": "first line\nsecond \u201cline\u201d"}),
            "",
            json.dumps({"image": "sub/c.jpg", "text": "", "extra": 1}),
        ],
    )
    src = FolderSource(folder)
    assert len(src) == 2 and src.skipped == []
    assert [e.line for e in src.entries] == [1, 3]
    first, second = src[0], src[1]
    assert first.text == 'first line\nsecond "line"'  # typographic quotes folded by Vocabulary.normalize
    assert first.image.dtype == np.uint8 and first.image.shape == (20, 40)
    assert second.image.shape == (10, 30) and second.text == ""


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"image": "a.png", "text": "x"', "not valid JSON"),
        ('["a.png", "x"]', "expected a JSON object"),
        ('{"text": "x"}', "missing key(s) 'image'"),
        ('{"image": "a.png"}', "missing key(s) 'text'"),
        ('{"image": "", "text": "x"}', "'image' must be a non-empty string"),
        ('{"image": 3, "text": "x"}', "'image' must be a non-empty string"),
        ('{"image": "a.png", "text": 5}', "'text' must be a string"),
        ('{"image": "missing.png", "text": "x"}', "image file 'missing.png' not found"),
        ('{"image": "../outside.png", "text": "x"}', "outside the folder"),
        ('{"image": "/etc/hostname", "text": "x"}', "outside the folder"),
        ('{"image": "sub/../../outside.png", "text": "x"}', "outside the folder"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    _image(tmp_path / "outside.png")
    folder = _folder(tmp_path / "data", ['{"image": "a.png", "text": "ok"}', "", line])
    with pytest.raises(LabelsFormatError) as e:
        read_labels(folder)
    assert str(e.value).startswith(f"{folder / 'labels.jsonl'}:3: ")
    assert reason in str(e.value)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path, [])
    (folder / "labels.jsonl").write_bytes(
        b'{"image": "a.png", "text": "ok"}\n{"image": "b.png", "text": "\xff"}\n'
    )
    with pytest.raises(LabelsFormatError, match=r"labels\.jsonl:2: not UTF-8"):
        FolderSource(folder)


def test_corrupt_image_names_the_file_and_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path, ['{"image": "a.png", "text": "ok"}', '{"image": "bad.png", "text": "x"}'])
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    src = FolderSource(folder)
    assert src[0].text == "ok"
    with pytest.raises(ImageError) as e:
        src[1]
    assert str(folder / "bad.png") in str(e.value) and "labels.jsonl:2" in str(e.value)


def test_skip_mode_counts_and_reports(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _folder(
        tmp_path,
        [
            '{"image": "a.png", "text": "one"}',
            "not json",
            '{"image": "gone.png", "text": "x"}',
            '{"image": "b.png", "text": "two"}',
        ],
    )
    with caplog.at_level(logging.WARNING):
        src = FolderSource(folder, on_error="skip")
    assert [src[i].text for i in range(len(src))] == ["one", "two"]
    assert len(src.skipped) == 2
    assert src.skipped[0].endswith(
        "labels.jsonl:2: not valid JSON (Expecting value: line 1 column 1 (char 0))"
    )
    assert "labels.jsonl:3: image file 'gone.png' not found" in src.skipped[1]
    assert "skipped 2 bad line(s) of 4" in caplog.text and "labels.jsonl:2" in caplog.text


def test_missing_or_empty_labels(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"labels\.jsonl"):
        read_labels(tmp_path)
    _folder(tmp_path, ["", "not json"])
    with pytest.raises(LabelsFormatError, match="no usable samples"):
        FolderSource(tmp_path, on_error="skip")
    with pytest.raises(ValueError, match="on_error"):
        read_labels(tmp_path, on_error="ignore")  # type: ignore[arg-type]


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    _image(tmp_path / "img" / "x.png")
    _image(tmp_path / "y.png")
    texts = ["line one\nline two \u00e9", 'quote " and \\ backslash']
    path = write_labels(tmp_path, [("img/x.png", texts[0]), (tmp_path / "y.png", texts[1])])
    assert path == tmp_path / "labels.jsonl"
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[1]) == {
        "image": "y.png",
        "text": texts[1],
    }
    entries = read_labels(tmp_path)
    assert [(e.image, e.text) for e in entries] == [
        (tmp_path / "img" / "x.png", texts[0]),
        (tmp_path / "y.png", texts[1]),
    ]
    with pytest.raises(ValueError, match="not inside the folder"):
        write_labels(tmp_path, [("../z.png", "x")])
    assert read_labels(tmp_path) == entries  # the failed write left the file as it was

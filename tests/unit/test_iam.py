"""IAM reading, splits, crops, synthetic paragraphs and preparation, on a generated fake IAM."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import logging
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from text_recognizer.data.iam.download import prepare_iam
from text_recognizer.data.iam.forms import parse_form
from text_recognizer.data.iam.layout import IAMError, find_layout
from text_recognizer.data.iam.source import CROP_PADDING, IAMSource, IAMSyntheticParagraphs
from text_recognizer.data.iam.splits import load_forms

from fixtures_iam import FakeIAM, make_fake_iam


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> FakeIAM:
    return make_fake_iam(tmp_path_factory.mktemp("iam"))


@pytest.fixture(autouse=True)
def _fresh_index() -> Iterator[None]:
    load_forms.cache_clear()
    yield
    load_forms.cache_clear()


def test_parse_form_decodes_entities_and_unions_word_boxes(fake: FakeIAM) -> None:
    form_id = next(iter(fake.lines))
    fid, writer, lines, skipped = parse_form(fake.root / "xml" / f"{form_id}.xml")
    assert (fid, writer, skipped) == (form_id, fake.writer[form_id], [])
    assert [(li.id, li.text) for li in lines] == [(i, t) for i, t, _ in fake.lines[form_id]]
    assert lines[0].text == 'She said "wait & see" today.'
    assert b"&quot;wait &amp; see&quot;" in (fake.root / "xml" / f"{form_id}.xml").read_bytes()
    for li, (_, _, (top, bottom, left, right)) in zip(lines, fake.lines[form_id], strict=True):
        assert (li.box.top, li.box.bottom, li.box.left, li.box.right) == (top, bottom, left, right)


def test_line_crops_have_the_box_shape_and_ink(fake: FakeIAM) -> None:
    src = IAMSource(fake.root, "line", "train", cache=False)
    train_forms = [f for f, w in fake.writer.items() if int(w) < 2]
    assert len(src) == sum(len(fake.lines[f]) for f in train_forms)
    expected = {i: (t, box) for f in train_forms for i, t, box in fake.lines[f]}
    for k, item in enumerate(src.items):
        text, (top, bottom, left, right) = expected[item.id]
        sample = src[k]
        assert sample.text == text
        assert sample.image.dtype == np.uint8
        assert sample.image.shape == (bottom - top + 2 * CROP_PADDING, right - left + 2 * CROP_PADDING)
        assert sample.image.min() < 100 and np.median(sample.image) > 200  # dark ink on white paper


def test_paragraphs_join_lines_and_cover_them(fake: FakeIAM) -> None:
    src = IAMSource(fake.root, "paragraph", "test", cache=False)
    test_forms = [f for f, w in fake.writer.items() if int(w) == 4]
    assert len(src) == len(test_forms)
    for k, item in enumerate(src.items):
        lines = fake.lines[item.id]
        sample = src[k]
        assert sample.text == "\n".join(t for _, t, _ in lines)
        top, bottom = min(b[0] for *_, b in lines), max(b[1] for *_, b in lines)
        left, right = min(b[2] for *_, b in lines), max(b[3] for *_, b in lines)
        assert sample.image.shape == (bottom - top + 2 * CROP_PADDING, right - left + 2 * CROP_PADDING)


def test_official_splits_are_disjoint_by_form_and_writer(fake: FakeIAM) -> None:
    sources = {s: IAMSource(fake.root, "paragraph", s, cache=False) for s in ("train", "val", "test")}
    forms = {s: {i.form for i in src.items} for s, src in sources.items()}
    writers = {s: {i.writer for i in src.items} for s, src in sources.items()}
    assert writers == {"train": {"000", "001"}, "val": {"002", "003"}, "test": {"004"}}  # val = set1 + set2
    assert set().union(*forms.values()) == set(fake.writer)
    assert not (
        forms["train"] & forms["val"] or forms["train"] & forms["test"] or forms["val"] & forms["test"]
    )


def test_writer_split_fallback_is_deterministic_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = make_fake_iam(
        tmp_path / "iam", writers=8, forms_per_writer=1, split_files=False, forms_dir="formsA-D"
    )
    with caplog.at_level(logging.WARNING):
        sources = {s: IAMSource(fake.root, "line", s, cache=False) for s in ("train", "val", "test")}
    assert "no task split files" in caplog.text
    writers = {s: {i.writer for i in src.items} for s, src in sources.items()}
    assert all(writers.values())
    assert not (
        writers["train"] & writers["val"]
        or writers["train"] & writers["test"]
        or writers["val"] & writers["test"]
    )
    assert set().union(*writers.values()) == set(fake.writer.values())
    load_forms.cache_clear()
    assert [i.id for i in IAMSource(fake.root, "line", "val", cache=False).items] == [
        i.id for i in sources["val"].items
    ]


def test_crop_cache_gives_the_same_image(fake: FakeIAM, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(fake.root, root)
    src = IAMSource(root, "line", "val")
    first = src[1]
    cached = root / "crops" / "line" / f"{src.items[1].id}.png"
    assert cached.is_file()
    np.testing.assert_array_equal(IAMSource(root, "line", "val")[1].image, first.image)


def test_lines_without_word_boxes_are_skipped_with_a_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = make_fake_iam(tmp_path / "iam", writers=4, forms_per_writer=1)
    form_id = next(iter(fake.lines))
    xml = fake.root / "xml" / f"{form_id}.xml"
    text = xml.read_text(encoding="iso-8859-1")
    line_id = fake.lines[form_id][1][0]
    start = text.index(f'<line id="{line_id}"')
    end = text.index("</line>", start)
    xml.write_text(
        text[:start] + f'<line id="{line_id}" text="no boxes">' + text[end:], encoding="iso-8859-1"
    )
    with caplog.at_level(logging.WARNING):
        src = IAMSource(fake.root, "line", "train", cache=False)
    assert line_id not in {i.id for i in src.items}
    assert "skipped 1 with no word boxes" in caplog.text and line_id in caplog.text


def test_malformed_xml_names_the_file(tmp_path: Path) -> None:
    fake = make_fake_iam(tmp_path / "iam", writers=4, forms_per_writer=1)
    xml = fake.root / "xml" / f"{next(iter(fake.lines))}.xml"
    xml.write_text("<form id='x'><handwritten-part><line")
    with pytest.raises(IAMError, match=str(xml)):
        IAMSource(fake.root, "line", "train")


def test_synthetic_paragraphs_stack_real_lines(fake: FakeIAM) -> None:
    lines = IAMSource(fake.root, "line", "train", cache=False)
    paras = IAMSyntheticParagraphs(lines, size=5, seed=3, lines_range=(2, 4))
    texts = {lines[i].text for i in range(len(lines))}
    assert len(paras) == 5
    for k in range(len(paras)):
        sample = paras[k]
        parts = sample.text.split("\n")
        assert 2 <= len(parts) <= 4 and set(parts) <= texts
        assert sample.image.dtype == np.uint8 and sample.image.ndim == 2
        assert sample.image.shape[0] >= len(parts) * min(lines[i].image.shape[0] for i in range(len(lines)))
    again = IAMSyntheticParagraphs(lines, size=5, seed=3, lines_range=(2, 4))
    np.testing.assert_array_equal(again[4].image, paras[4].image)
    assert again[4].text == paras[4].text
    other = IAMSyntheticParagraphs(lines, size=5, seed=4, lines_range=(2, 4))
    assert [other[k].text for k in range(5)] != [paras[k].text for k in range(5)]
    with pytest.raises(IndexError):
        paras[5]


def test_prepare_from_local_directory_links_the_layout(fake: FakeIAM, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    assert prepare_iam(str(fake.root), sha256=None, out=out) == out
    assert (out / "xml").is_symlink() and (out / "task" / "testset.txt").is_symlink()
    assert len(IAMSource(out, "line", "test", cache=False)) == len(
        IAMSource(fake.root, "line", "test", cache=False)
    )


def test_prepare_reports_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(IAMError) as e:
        prepare_iam(str(tmp_path / "empty"), sha256=None, out=tmp_path / "out")
    assert "xml/<form-id>.xml" in str(e.value) and "form images" in str(e.value)
    with pytest.raises(IAMError, match="neither an http"):
        prepare_iam(str(tmp_path / "nowhere"), sha256=None, out=tmp_path / "out")


def _tgz(src: Path, dest: Path, top: str = "iamdb") -> Path:
    with tarfile.open(dest, "w:gz") as t:
        t.add(src, arcname=top)
    return dest


def test_prepare_from_url_checks_sha256(fake: FakeIAM, tmp_path: Path) -> None:
    archive = _tgz(fake.root, tmp_path / "iam.tgz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    out = tmp_path / "out"
    with pytest.raises(IAMError, match="sha256 mismatch"):
        prepare_iam(archive.as_uri(), sha256="0" * 64, out=out)
    assert not any((out / "downloads").iterdir())
    assert prepare_iam(archive.as_uri(), sha256=digest, out=out) == out
    assert len(IAMSource(out, "paragraph", "train", cache=False)) == 4
    assert not any((out / "downloads").iterdir())


def test_prepare_from_http_server(fake: FakeIAM, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    archive = shutil.make_archive(str(served / "iamdb"), "zip", fake.root)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{Path(archive).name}"
        out = prepare_iam(
            url, sha256=hashlib.sha256(Path(archive).read_bytes()).hexdigest(), out=tmp_path / "out"
        )
        assert len(IAMSource(out, "line", "val", cache=False)) == 12
        with pytest.raises(IAMError, match="download failed"):
            prepare_iam(url + ".missing", sha256=None, out=tmp_path / "out2")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_unsafe_archive_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tgz"
    with tarfile.open(archive, "w:gz") as t:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        t.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(IAMError, match="unsafe member"):
        prepare_iam(archive.as_uri(), sha256=None, out=tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_find_layout_looks_one_folder_down(fake: FakeIAM, tmp_path: Path) -> None:
    shutil.copytree(fake.root, tmp_path / "top" / "iamdb")
    layout = find_layout(tmp_path / "top")
    assert layout.base == tmp_path / "top" / "iamdb" and not layout.problems()
    assert set(layout.xml) == set(layout.images) == set(fake.writer)


def test_forms_in_no_split_file_are_left_out_with_a_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = make_fake_iam(tmp_path / "iam", writers=4, forms_per_writer=2)
    trainset = fake.root / "task" / "trainset.txt"
    dropped = next(iter(fake.lines))
    trainset.write_text("\n".join(i for i in trainset.read_text().split() if not i.startswith(dropped)))
    with caplog.at_level(logging.WARNING):
        train = IAMSource(fake.root, "paragraph", "train", cache=False)
    assert [i.id for i in train.items] == [f for f, w in fake.writer.items() if w == "000" and f != dropped]
    assert "1 forms are in none of the task's split files" in caplog.text

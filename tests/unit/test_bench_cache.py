"""The benchmark's cached synthetic test sets follow the renderer: a changed renderer draws other images."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import run_all


def _fake_repo(root: Path, render_code: str) -> None:
    synth = root / "text_recognizer" / "data" / "synth"
    synth.mkdir(parents=True, exist_ok=True)
    (synth / "render.py").write_text(render_code)
    (synth / "fonts.py").write_text("# fonts\n")


def test_the_cache_key_changes_with_the_renderer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_all, "REPO", tmp_path)
    _fake_repo(tmp_path, "PEN = 'eroded'\n")
    before = run_all.renderer_fingerprint()
    assert run_all.renderer_fingerprint() == before  # the same code, the same key
    _fake_repo(tmp_path, "PEN = 'skeleton'\n")
    assert run_all.renderer_fingerprint() != before

"""``stage`` leaves the shipped model alone unless asked with ``--replace-shipped``."""

from __future__ import annotations

from pathlib import Path

import pytest

from text_recognizer import cli
from text_recognizer.paths import shipped_artifact
from text_recognizer.staging.assemble import check_target


def test_check_target_guards_only_the_shipped_folder(tmp_path: Path) -> None:
    shipped = shipped_artifact()
    assert (shipped / "manifest.json").exists(), "the repository ships artifacts/line-default"
    with pytest.raises(ValueError, match="--replace-shipped"):
        check_target(shipped, replace_shipped=False)
    with pytest.raises(ValueError, match="shipped model"):  # the same folder by another spelling
        check_target(shipped.parent / "x" / ".." / shipped.name, replace_shipped=False)
    check_target(shipped, replace_shipped=True)
    check_target(tmp_path / "line-default", replace_shipped=False)  # same name, another folder: allowed


def test_stage_command_refuses_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shipped = shipped_artifact()
    before = {p.name: p.stat().st_mtime_ns for p in shipped.iterdir()}
    missing = tmp_path / "no.ckpt"  # never read: the guard comes first
    monkeypatch.setattr(
        "sys.argv",
        cli_args(missing, shipped),
    )
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--replace-shipped" in err and "\n" not in err
    assert {p.name: p.stat().st_mtime_ns for p in shipped.iterdir()} == before


def cli_args(ckpt: Path, out: Path) -> list[str]:
    return ["text-recognizer", "stage", str(ckpt), "--out-dir", str(out.parent), "--name", out.name]

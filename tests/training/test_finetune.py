"""``finetune``: the quality gate, registration only past it, ``promote`` and serving a registered version."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from text_recognizer.data.folder import read_labels, write_labels
from text_recognizer.inference.manifest import Manifest
from text_recognizer.staging.finetune import (
    FinetuneConfig,
    GateDecision,
    Scores,
    decide,
    finetune,
    promote,
    record_gate,
    split_lines,
)
from text_recognizer.training.tracking import TrackingConfig


def tracking(tmp: Path) -> TrackingConfig:
    return TrackingConfig(
        tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", artifact_location=str(tmp / "mlartifacts")
    )


def user_lines(folder: Path, n: int = 12) -> Path:
    """A labels.jsonl folder of ``n`` rendered synthetic lines (the format ``feedback export`` writes)."""
    from text_recognizer.data.synth.dataset import SynthSource

    src = SynthSource(kind="line", split="test", size=n, seed=5)
    (folder / "images").mkdir(parents=True)
    entries = []
    for i in range(n):
        sample = src[i]
        buf = io.BytesIO()
        Image.fromarray(sample.image).save(buf, "PNG")
        (folder / f"images/{i}.png").write_bytes(buf.getvalue())
        entries.append((f"images/{i}.png", sample.text))
    write_labels(folder, entries)
    return folder


def test_gate_refuses_a_worse_model() -> None:
    base = Scores(synth_cer=0.10, user_cer=0.40)
    assert decide(base, Scores(0.105, 0.30), "prod", 0.10).passed
    worse_user = decide(base, Scores(0.09, 0.45), "prod", 0.10)
    assert not worse_user.passed and "not better" in worse_user.reasons[1]
    assert not decide(base, Scores(0.09, 0.40), "prod", 0.10).passed  # equal is not better
    forgot = decide(base, Scores(0.12, 0.20), "prod", 0.10)  # better on the user, 20 % worse on synthetic
    assert not forgot.passed and "above" in forgot.reasons[0]
    assert any("REFUSED" in line for line in forgot.lines())


def test_split_keeps_every_line_once(tmp_path: Path) -> None:
    lines = user_lines(tmp_path / "lines", 20)
    train, heldout = split_lines(lines, tmp_path / "split", 0.25)
    a, b = read_labels(train), read_labels(heldout)
    assert a and b and len(a) + len(b) == 20
    assert sorted(e.text for e in [*a, *b]) == sorted(e.text for e in read_labels(lines))
    again = split_lines(lines, tmp_path / "split2", 0.25)[1]
    assert [e.text for e in read_labels(again)] == [e.text for e in b]


def test_refused_is_not_registered_and_promote_moves_production(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.tracking import MlflowClient

    from text_recognizer.staging.assemble import stage_registered

    t = tracking(tmp_path)
    client = MlflowClient(tracking_uri=t.tracking_uri)
    run_id = client.create_run(client.create_experiment("x", t.artifact_location)).info.run_id
    refused = decide(Scores(0.1, 0.4), Scores(0.1, 0.5), "base", 0.1)
    assert record_gate(refused, run_id, tiny_checkpoint, t) is None
    assert client.get_run(run_id).data.tags["gate"] == "refused"
    assert client.get_run(run_id).data.metrics["gate/new_user_cer"] == 0.5
    assert not client.search_registered_models()
    passed: GateDecision = decide(Scores(0.1, 0.4), Scores(0.1, 0.3), "base", 0.1)
    assert record_gate(passed, run_id, tiny_checkpoint, t) == "1"
    assert record_gate(passed, run_id, tiny_checkpoint, t) == "2"
    name = t.register_as
    assert str(client.get_model_version_by_alias(name, "candidate").version) == "2"

    assert promote(f"{name}/1", t.tracking_uri) == (name, "1")
    assert str(client.get_model_version_by_alias(name, "production").version) == "1"
    assert promote(f"{name}@candidate", t.tracking_uri) == (name, "2")
    assert str(client.get_model_version_by_alias(name, "production").version) == "2"
    with pytest.raises(FileNotFoundError):
        promote(f"{name}@nothing", t.tracking_uri)

    folder = stage_registered(f"{name}@production", tmp_path / "artifacts", t.tracking_uri)
    assert folder.name == f"{name}-v2"
    manifest = Manifest.read(folder)
    assert manifest.provenance.registry["version"] == "2" and manifest.weights is not None
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert stage_registered(f"{name}@production", tmp_path / "artifacts", t.tracking_uri) == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp  # already staged: not staged again


@pytest.mark.slow
def test_finetune_from_an_artifact_gates_and_tracks(
    tmp_path: Path, tiny_artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    t = tracking(tmp_path)
    cfg = FinetuneConfig(
        lines=user_lines(tmp_path / "lines"),
        base=tiny_artifact,
        max_minutes=0.1,
        train_size=16,
        batch_size=8,
        gate_synth_lines=8,
        work_dir=tmp_path / "ft",
        tracking=t,
    )
    result = finetune(cfg)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=t.tracking_uri)
    run = client.get_run(str(result.run_id))
    assert run.data.tags["gate"] == ("passed" if result.gate.passed else "refused")
    assert run.data.metrics["gate/base_user_cer"] == pytest.approx(result.gate.base.user_cer)
    registered = [mv.version for mv in client.search_model_versions(f"name='{t.register_as}'")]
    assert registered == ([result.model_version] if result.gate.passed else [])
    assert result.checkpoint.exists() and run.data.params["init_from"].endswith("weights.pt")


def test_split_takes_a_relative_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``finetune --lines data/corrections`` from the project folder: a relative path (labels resolve to
    absolute image paths)."""
    user_lines(tmp_path / "lines", 8)
    monkeypatch.chdir(tmp_path)
    train, heldout = split_lines(Path("lines"), Path("split"), 0.25)
    assert len(read_labels(train)) + len(read_labels(heldout)) == 8

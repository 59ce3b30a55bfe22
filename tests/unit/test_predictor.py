"""Staged artifact and predictor: manifest, parity record, torch-free import, real uploads, evaluation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from text_recognizer.inference.manifest import ArtifactError, Manifest
from text_recognizer.inference.predictor import load_predictor


def test_manifest_records_everything(tiny_artifact: Path) -> None:
    m = Manifest.read(tiny_artifact)
    parity = m.provenance.parity
    assert parity is not None and parity.greedy_identical is True
    assert parity.max_abs_logit_diff <= parity.tolerance
    assert m.vocab[:4] == ("<pad>", "<s>", "</s>", "<unk>")
    assert m.preprocessing.input_height == 32
    assert m.model.d_model == 32
    assert set(m.files) == {"encoder.onnx", "cross_kv.onnx", "decoder_step.onnx", "lm.npz", "weights.pt"}
    # the weights for fine-tuning: recorded, checked by sha256 like every file
    assert m.weights is not None and m.weights.file == "weights.pt" and m.weights.dtype == "float16"
    assert m.weights.n_params > 0
    assert m.provenance.config["data"]["kind"] == "line"
    assert m.calibration is not None and m.calibration.decoder == m.decoding.default
    assert m.provenance.code_version
    # the monitored metric under its own name
    assert m.metrics.monitor == m.provenance.config["trainer"]["monitor"]
    decoding = m.decoding
    assert decoding.available == ("attention", "ctc", "ctc_lm")
    assert decoding.default == min(decoding.available, key=lambda d: decoding.val_cer[d])
    # the language model's weights were chosen on the grid, and the predictor uses them
    grid = decoding.beam_grid_cer
    assert len(grid) == 2 and decoding.val_cer["ctc_lm"] == min(grid.values())
    assert decoding.lm is not None and decoding.lm.order == 4
    beam = load_predictor(tiny_artifact).reader.decoder.beam
    assert beam == decoding.beam and f"alpha={beam.alpha},beta={beam.beta}" in grid


def test_manifest_round_trips(tiny_artifact: Path, tmp_path: Path) -> None:
    m = Manifest.read(tiny_artifact)
    m.write(tmp_path)
    assert Manifest.read(tmp_path, verify=False) == m
    assert json.loads((tmp_path / "manifest.json").read_text())["format_version"] == 3


def test_format_1_manifest_loads_with_true_metric_names(tmp_path: Path) -> None:
    # the manifest of the model shipped before format 2 (commit c3885a4), kept as a fixture
    fixture = Path(__file__).parent.parent / "fixtures" / "manifest-format-1.json"
    folder = tmp_path / "old-artifact"
    folder.mkdir()
    (folder / "manifest.json").write_text(fixture.read_text())
    m = Manifest.read(folder, verify=False)
    assert json.loads((folder / "manifest.json").read_text())["format_version"] == 1
    # format 1 called the best checkpoint's score "val/cer"; the run monitored val/cer_ctc
    assert m.metrics.monitor == "val/cer_ctc" and m.metrics.best is not None
    assert m.decoding.default == "ctc_lm" and m.decoding.beam.alpha == 0.4
    assert m.preprocessing.pad_width_multiple == 8 and m.model.head_dim == 32


@pytest.mark.parametrize(
    "change,message",
    [
        ({"format_version": 99}, "format_version 99"),
        ({"model": {}}, "manifest model"),
        ({"vocab": None}, "vocab"),
    ],
)
def test_unreadable_manifest_fails_clearly(
    tiny_artifact: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    d = json.loads((tiny_artifact / "manifest.json").read_text())
    d.update(change)
    if d["vocab"] is None:
        del d["vocab"]
    (tmp_path / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ArtifactError, match=message):
        Manifest.read(tmp_path, verify=False)


def test_corrupt_artifact_is_refused(tiny_artifact: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_artifact.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "decoder_step.onnx").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="sha256"):
        load_predictor(broken)
    with pytest.raises(ArtifactError, match="manifest"):
        load_predictor(tmp_path / "nothing-here")


def test_weights_are_verified_and_optional(tiny_artifact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_artifact, copy)
    (copy / "weights.pt").write_bytes(b"replaced")
    with pytest.raises(ArtifactError, match="sha256"):
        Manifest.read(copy)
    m = json.loads((copy / "manifest.json").read_text())
    (copy / "weights.pt").unlink()
    del m["files"]["weights.pt"]
    (copy / "manifest.json").write_text(json.dumps(m))  # weights named, but not among the files
    with pytest.raises(ArtifactError, match="weights file"):
        Manifest.read(copy)
    del m["weights"]  # an artifact staged before weights were shipped
    (copy / "manifest.json").write_text(json.dumps(m))
    assert Manifest.read(copy).weights is None
    assert load_predictor(copy).decoders


def test_artifact_without_language_model_offers_no_ctc_lm(tiny_artifact: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in tiny_artifact.iterdir():
        if f.name != "lm.npz":
            (plain / f.name).write_bytes(f.read_bytes())
    m = json.loads((plain / "manifest.json").read_text())
    del m["files"]["lm.npz"]
    m["decoding"]["default"] = "ctc_lm"
    (plain / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="only attention, ctc"):
        load_predictor(plain)
    assert load_predictor(plain, decoder="ctc").decoders == ("attention", "ctc")


def test_format_2_artifact_reads_as_it_did(tiny_artifact: Path, tmp_path: Path) -> None:
    # before format 3 the encoder returned the attention decoder's cross-attention keys and values itself
    onnx = pytest.importorskip("onnx")
    from onnx import compose

    old = tmp_path / "format-2"
    shutil.copytree(tiny_artifact, old)
    cross = compose.add_prefix(
        onnx.load(old / "cross_kv.onnx"), "cross/", rename_inputs=False, rename_outputs=False
    )
    encoder = compose.merge_models(onnx.load(old / "encoder.onnx"), cross, io_map=[("memory", "memory")])
    assert [o.name for o in encoder.graph.output] == ["ctc_logits", "cross_k", "cross_v"]
    onnx.save(encoder, old / "encoder.onnx")
    (old / "cross_kv.onnx").unlink()
    m = json.loads((old / "manifest.json").read_text())
    del m["files"]["cross_kv.onnx"]
    m["format_version"] = 2
    (old / "manifest.json").write_text(json.dumps(m))
    Manifest.read(old, verify=False).with_files(old, list(m["files"])).write(old)

    image = _paragraph(2)
    for decoder in ("attention", "ctc", "ctc_lm"):
        now, then = load_predictor(tiny_artifact, decoder=decoder), load_predictor(old, decoder=decoder)
        assert now.model.cross_session is not None and then.model.cross_session is None
        a, b = (p.read_lines(p.preprocessor(image)) for p in (now, then))
        assert len(a) == 2 and a == b


def test_predictor_does_not_import_torch(tiny_artifact: Path) -> None:
    code = (
        "import sys; from text_recognizer.inference.predictor import load_predictor; "
        f"p = load_predictor({str(tiny_artifact)!r}); "
        "import numpy as np; p.predict(np.full((40, 200), 255, np.uint8)); "
        "bad = [m for m in ('torch', 'lightning', 'torchmetrics') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _paragraph(n_lines: int, mode: str = "L", dark_ink: bool = True) -> Image.Image:
    bg, fg = (240, 20) if dark_ink else (15, 230)
    img = Image.new("L", (480, 60 * n_lines + 20), bg)
    d = ImageDraw.Draw(img)
    for i in range(n_lines):
        d.text((20, 15 + 60 * i), f"line number {i} of the page", fill=fg, font_size=30)
    return img.convert(mode)


@pytest.mark.parametrize(
    "mode,dark_ink,decoder",
    [("L", True, "attention"), ("RGB", False, "ctc"), ("L", False, "ctc_lm"), ("RGBA", True, None)],
)
def test_predict_reads_each_line(tiny_artifact: Path, mode: str, dark_ink: bool, decoder: str | None) -> None:
    predictor = load_predictor(tiny_artifact, decoder=decoder)
    assert predictor.decoder == (decoder or Manifest.read(tiny_artifact).decoding.default)
    image = _paragraph(4, mode, dark_ink)
    # the untrained model reads with little confidence: keep every line
    pred = replace(predictor, min_line_confidence=0.0).predict(image)
    assert len(pred.lines) == 4
    assert pred.text.count("\n") == len([ln for ln in pred.lines if ln.text]) - 1
    assert all(0.0 <= line.confidence <= 1.0 for line in pred.lines)
    assert [line.box[1] for line in pred.lines] == sorted(line.box[1] for line in pred.lines)
    for line in pred.lines:  # [x_min, y_min, x_max, y_max] inside the image
        x0, y0, x1, y1 = line.box
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
        for word in line.words:
            if predictor.decoder == "attention":
                assert word.box is None
                continue
            assert word.box is not None
            wx0, wy0, wx1, wy1 = word.box
            assert x0 <= wx0 < wx1 <= x1 and y0 <= wy0 < wy1 <= y1
    assert pred.image_stats["polarity"] == ("dark_ink" if dark_ink else "light_ink")
    assert pred.model_version == Manifest.read(tiny_artifact).version


def test_blank_image_gives_empty_text(tiny_artifact: Path) -> None:
    pred = load_predictor(tiny_artifact).predict(np.full((100, 300), 200, np.uint8))
    assert pred.text == "" and pred.lines == [] and pred.confidence == 0.0


def test_predict_and_evaluate_commands(tiny_artifact: Path, tmp_path: Path) -> None:
    data = tmp_path / "set"
    data.mkdir()
    rows = []
    for i in range(2):
        _paragraph(2).save(data / f"{i}.png")
        rows.append(json.dumps({"image": f"{i}.png", "text": f"line number 0 of the page\nline {i}"}))
    (data / "labels.jsonl").write_text("\n".join(rows) + "\n")
    exe = Path(sys.executable).parent / "text-recognizer"
    out = subprocess.run(
        [str(exe), "predict", str(data / "0.png"), "--model", str(tiny_artifact), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    # the untrained model's lines fall below the confidence floor: at most the two lines, each with its box
    assert len(result["lines"]) <= 2 and set(result) >= {"text", "confidence", "lines"}
    assert all(len(line["box"]) == 4 for line in result["lines"])
    report = tmp_path / "report.html"
    out = subprocess.run(
        [str(exe), "evaluate", "--data", str(data), "--model", str(tiny_artifact), "--report", str(report)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["n"] == 2 and result["cer"] > 0 and result["seconds_per_image"] > 0
    assert {"cer", "wer", "n", "seconds_per_image"} <= set(result)
    assert "0.png" in report.read_text()


def test_edit_distance() -> None:
    from text_recognizer.metrics import edit_distance

    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance(["a", "b", "c"], ["a", "c"]) == 1


def test_ctc_greedy_collapses_repeats_and_blanks() -> None:
    from text_recognizer.inference.decoders import ctc_greedy

    frames = [0, 5, 5, 0, 5, 7, 7, 0]  # blank a a blank a b b blank -> a a b
    logits = np.full((1, len(frames), 9), -10.0, np.float32)
    for t, k in enumerate(frames):
        logits[0, t, k] = 10.0
    ((ids, probs, spans),) = ctc_greedy(logits, blank=0, stride=4)
    assert ids == [5, 5, 7]
    assert len(probs) == 3 and all(p > 0.99 for p in probs)
    assert spans == [(4, 12), (16, 20), (20, 28)]  # each run's frames, 4 columns a frame

"""CER and WER of a staged model over a labels.jsonl folder, with an HTML report of the worst samples.

``text-recognizer evaluate --data DIR [--model ARTIFACT]`` prints one JSON object on its last line.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from text_recognizer.data.folder import read_labels
from text_recognizer.inference.predictor import load_predictor
from text_recognizer.metrics import edit_distance
from text_recognizer.vocab import Vocabulary


@dataclass(frozen=True)
class SampleResult:
    image: Path
    truth: str
    prediction: str
    confidence: float
    char_errors: int
    word_errors: int
    seconds: float

    @property
    def cer(self) -> float:
        return self.char_errors / max(1, len(self.truth))


@dataclass(frozen=True)
class Scores:
    """Corpus-level rates: total edits over total reference characters (or words)."""

    cer: float
    wer: float
    n: int
    seconds_per_image: float


def score(samples: list[SampleResult]) -> Scores:
    chars = sum(len(s.truth) for s in samples)
    words = sum(len(s.truth.split()) for s in samples)
    return Scores(
        cer=sum(s.char_errors for s in samples) / max(1, chars),
        wer=sum(s.word_errors for s in samples) / max(1, words),
        n=len(samples),
        seconds_per_image=sum(s.seconds for s in samples) / max(1, len(samples)),
    )


def _thumbnail(path: Path, max_side: int = 900) -> str:
    img = Image.open(path).convert("L")
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def write_report(path: Path, samples: list[SampleResult], scores: Scores, title: str, worst: int) -> None:
    """An HTML page: the scores, then the ``worst`` samples by CER with image, truth and prediction."""
    rows = []
    for s in sorted(samples, key=lambda s: s.cer, reverse=True)[:worst]:
        img, name = _thumbnail(s.image), html.escape(s.image.name)
        truth, pred = html.escape(s.truth), html.escape(s.prediction)
        rows.append(
            f"<tr><td><img src='data:image/png;base64,{img}'><br><small>{name}</small></td>"
            f"<td><pre>{truth}</pre></td><td><pre>{pred}</pre></td>"
            f"<td>{s.cer:.3f}<br>conf {s.confidence:.2f}</td></tr>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}
td{{vertical-align:top;border-bottom:1px solid #ccc;padding:6px}}
img{{max-width:520px;background:#eee}} pre{{white-space:pre-wrap;margin:0}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>CER <b>{scores.cer:.4f}</b> &middot; WER <b>{scores.wer:.4f}</b> &middot; {scores.n} images &middot;
{scores.seconds_per_image * 1000:.0f} ms per image</p>
<h2>Worst {min(worst, len(samples))} samples</h2>
<table><tr><th>image</th><th>truth</th><th>prediction</th><th>CER</th></tr>{"".join(rows)}</table>
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)


def evaluate(data: Path, model: Path | None = None) -> tuple[list[SampleResult], Scores, str]:
    """Predict every image of a labels.jsonl folder. Returns the per-sample results, scores, model version."""
    entries = read_labels(data)
    predictor = load_predictor(model)
    predictor.predict(entries[0].image)  # warm-up: the first call pays for onnxruntime's lazy set-up
    results = []
    for e in tqdm(entries, desc=f"evaluate {data.name}", unit="img", disable=None):
        truth = Vocabulary.normalize(e.text)
        t0 = time.perf_counter()
        pred = predictor.predict(e.image, name=str(e.image))
        dt = time.perf_counter() - t0
        results.append(
            SampleResult(
                image=e.image,
                truth=truth,
                prediction=pred.text,
                confidence=pred.confidence,
                char_errors=edit_distance(truth, pred.text),
                word_errors=edit_distance(truth.split(), pred.text.split()),
                seconds=dt,
            )
        )
    return results, score(results), predictor.model_version


def evaluate_folder(
    data: Path, model: Path | None = None, report: Path | None = None, worst: int = 20
) -> dict[str, Any]:
    """The ``evaluate`` command: scores, an HTML report, and one JSON line last."""
    results, scores, version = evaluate(data, model)
    report = report or Path("outputs") / "eval" / f"{data.resolve().name}-report.html"
    write_report(report, results, scores, f"{version} on {data}", worst)
    for r in sorted(results, key=lambda r: r.cer, reverse=True)[:3]:
        print(f"worst: {r.image.name} cer={r.cer:.3f}\n  truth: {r.truth!r}\n  pred:  {r.prediction!r}")
    out = {
        "cer": round(scores.cer, 4),
        "wer": round(scores.wer, 4),
        "n": scores.n,
        "seconds_per_image": round(scores.seconds_per_image, 4),
        "model_version": version,
        "data": str(data),
        "report": str(report),
    }
    print(json.dumps(out))
    return out

"""``text-recognizer monitor``: a report over the monitoring store, printed and plotted.

Traffic over time, latency percentiles, flag rate, confidence distribution, input drift against the
training data, and quality: the CER of the model's text against the users' corrections (over time and per
model version; a CER over corrected predictions only, so it measures how wrong the model is when it is
wrong enough to be corrected) and the share of predictions flagged per model version.

The training reference is ``Manifest.provenance.image_stats`` of the staged artifact (written
by staging: ``width_mean``, ``height_mean``, ``brightness_mean``, ``brightness_std``, ``dark_ink_fraction``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from text_recognizer.metrics import error_rate
from text_recognizer.serving.store import CorrectionRecord, PredictionRecord, Store

#: Drift thresholds: a size ratio outside these bounds, a brightness shift of more than this many training
#: standard deviations, or a dark-ink share differing by more than this.
SIZE_RATIO_BOUNDS = (0.5, 2.0)
BRIGHTNESS_Z_LIMIT = 1.0
POLARITY_DIFF_LIMIT = 0.25
CONFIDENCE_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class DriftLine:
    feature: str
    production: float
    training: float
    measure: str
    drifted: bool

    def __str__(self) -> str:
        mark = "DRIFT" if self.drifted else "ok"
        now, ref = f"now {self.production:9.2f}", f"training {self.training:9.2f}"
        return f"  {self.feature:<11} {now}  {ref}  {self.measure:<26} {mark}"


def training_reference(model: Path | None = None) -> tuple[dict[str, Any] | None, str]:
    """``(image_stats, where)`` from the artifact's manifest, or ``(None, why not)``."""
    from text_recognizer.inference.manifest import Manifest
    from text_recognizer.paths import default_artifact

    folder = Path(model) if model else default_artifact()
    try:
        manifest = Manifest.read(folder, verify=False)
    except Exception as e:
        return None, f"cannot read the manifest of {folder} ({e})"
    stats = manifest.provenance.image_stats
    if not stats:
        return None, f"{folder}/manifest.json has no data.image_stats"
    return dict(stats), str(folder)


def drift(records: list[PredictionRecord], reference: dict[str, Any]) -> list[DriftLine]:
    """Compare production inputs with the training reference, one line per feature that both sides have."""
    out: list[DriftLine] = []
    lo, hi = SIZE_RATIO_BOUNDS
    for feature in ("width", "height"):
        ref = reference.get(f"{feature}_mean")
        values = [getattr(r, feature) for r in records if getattr(r, feature) > 0]
        if ref and values:
            now = float(np.mean(values))
            ratio = now / float(ref)
            out.append(DriftLine(feature, now, float(ref), f"mean ratio {ratio:.2f}", not lo <= ratio <= hi))
    bright = [r.brightness for r in records if r.brightness is not None]
    ref_mean, ref_std = reference.get("brightness_mean"), reference.get("brightness_std")
    if bright and ref_mean is not None:
        now = float(np.mean(bright))
        z = (now - float(ref_mean)) / max(float(ref_std or 0.0), 1.0)
        out.append(
            DriftLine(
                "brightness", now, float(ref_mean), f"shift {z:+.2f} training sd", abs(z) > BRIGHTNESS_Z_LIMIT
            )
        )
    polarity = [r.polarity for r in records if r.polarity]
    ref_dark = reference.get("dark_ink_fraction")
    if polarity and ref_dark is not None:
        now = sum(p == "dark_ink" for p in polarity) / len(polarity)
        diff = now - float(ref_dark)
        out.append(
            DriftLine(
                "dark ink", now, float(ref_dark), f"share diff {diff:+.2f}", abs(diff) > POLARITY_DIFF_LIMIT
            )
        )
    return out


def _percentiles(values: list[float]) -> str:
    p50, p95, p99 = np.percentile(values, (50, 95, 99))
    return f"p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  max {max(values):.1f}"


def _bucket(records: list[PredictionRecord]) -> tuple[timedelta, list[datetime], list[int]]:
    """Requests per time bucket (an hour, or a day over long spans), empty buckets included."""
    first, last = records[0].created_at, records[-1].created_at
    step = timedelta(hours=1) if last - first <= timedelta(days=3) else timedelta(days=1)
    start = first.replace(minute=0, second=0, microsecond=0)
    if step == timedelta(days=1):
        start = start.replace(hour=0)
    n = int((last - start) / step) + 1
    counts = [0] * n
    for r in records:
        counts[int((r.created_at - start) / step)] += 1
    return step, [start + i * step for i in range(n)], counts


@dataclass(frozen=True)
class VersionQuality:
    """One model version's predictions, flags, corrections and CER on the corrected ones (None: none)."""

    model_version: str
    predictions: int
    flagged: int
    corrected: int
    cer: float | None

    def __str__(self) -> str:
        cer = "-" if self.cer is None else f"{self.cer:.3f}"
        share = self.flagged / max(1, self.predictions)
        return (
            f"  {self.model_version:<32} predictions {self.predictions:6d}  flagged {self.flagged:5d} "
            f"({share:6.1%})  corrected {self.corrected:5d}  CER on corrected {cer}"
        )


def _cer(corrections: list[CorrectionRecord]) -> float | None:
    if not corrections:
        return None
    return error_rate([c.predicted for c in corrections], [c.corrected for c in corrections])


def quality(records: list[PredictionRecord], corrections: list[CorrectionRecord]) -> list[VersionQuality]:
    """Per model version (in order of first use): flag share and CER on corrected predictions."""
    out = []
    for version in dict.fromkeys(r.model_version for r in records):
        mine = [r for r in records if r.model_version == version]
        fixed = [c for c in corrections if c.model_version == version]
        out.append(VersionQuality(version, len(mine), sum(r.flagged for r in mine), len(fixed), _cer(fixed)))
    return out


def cer_over_time(
    records: list[PredictionRecord], corrections: list[CorrectionRecord]
) -> list[tuple[datetime, str, int, float]]:
    """``(bucket start, model version, corrections, CER)`` per time bucket of :func:`_bucket` and version."""
    step, starts, _ = _bucket(records)
    groups: dict[tuple[int, str], list[CorrectionRecord]] = {}
    for c in corrections:
        i = int((c.created_at - starts[0]) / step)
        if 0 <= i < len(starts):
            groups.setdefault((i, c.model_version), []).append(c)
    return [(starts[i], v, len(g), _cer(g) or 0.0) for (i, v), g in sorted(groups.items())]


def report(
    records: list[PredictionRecord],
    reference: dict[str, Any] | None,
    ref_note: str,
    corrections: list[CorrectionRecord] | None = None,
) -> list[str]:
    """The text report as lines."""
    if not records:
        return ["no predictions recorded in this window"]
    lines = [
        f"requests: {len(records)} from {records[0].created_at:%Y-%m-%d %H:%M} "
        f"to {records[-1].created_at:%Y-%m-%d %H:%M} UTC"
    ]
    by_source = Counter(r.source for r in records)
    lines.append("  by source: " + ", ".join(f"{k} {v}" for k, v in by_source.most_common()))
    by_model = Counter(r.model_version for r in records)
    lines.append("  by model: " + ", ".join(f"{k} {v}" for k, v in by_model.most_common()))
    step, _, counts = _bucket(records)
    unit = "hour" if step == timedelta(hours=1) else "day"
    lines.append(
        f"requests per {unit}: peak {max(counts)}, mean {np.mean(counts):.1f} over {len(counts)} {unit}(s)"
    )
    lines.append("latency ms: " + _percentiles([r.latency_ms for r in records]))
    flagged = sum(r.flagged for r in records)
    lines.append(f"flag rate: {flagged}/{len(records)} = {flagged / len(records):.1%}")
    corrections = corrections or []
    lines.append("quality per model version:")
    lines.extend(str(q) for q in quality(records, corrections))
    over_time = cer_over_time(records, corrections)
    if over_time:
        lines.append(f"CER on corrected predictions per {unit}:")
        lines.extend(
            f"  {t:%Y-%m-%d %H:%M}  {v:<32} {n:4d} corrected  CER {c:.3f}" for t, v, n, c in over_time
        )
    conf = np.array([r.confidence for r in records])
    hist, _ = np.histogram(conf, bins=CONFIDENCE_EDGES)
    lines.append(
        f"confidence: mean {conf.mean():.3f}  p10 {np.percentile(conf, 10):.3f}  median {np.median(conf):.3f}"
    )
    for lo, hi, n in zip(CONFIDENCE_EDGES[:-1], CONFIDENCE_EDGES[1:], hist, strict=True):
        lines.append(f"  {lo:.1f}-{hi:.1f} {n:6d} {'#' * round(40 * n / len(records))}")
    if reference is None:
        lines.append(f"input drift: training reference unavailable: {ref_note}")
    else:
        lines.append(f"input drift vs training data ({ref_note}):")
        compared = drift(records, reference)
        lines.extend([str(d) for d in compared] or ["  no comparable statistics"])
    return lines


def plot(
    records: list[PredictionRecord],
    reference: dict[str, Any] | None,
    out: Path,
    corrections: list[CorrectionRecord] | None = None,
) -> list[Path]:
    """Write ``requests.png``, ``latency.png``, ``confidence.png``, ``inputs.png`` and ``quality.png`` into
    ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    step, starts, counts = _bucket(records)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(starts, counts, width=step * 0.9, align="edge")  # type: ignore[arg-type]
    ax.set(
        title="Requests over time", ylabel=f"requests per {'hour' if step == timedelta(hours=1) else 'day'}"
    )
    fig.autofmt_xdate()
    written.append(_save(fig, out / "requests.png"))

    latency = [r.latency_ms for r in records]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.hist(latency, bins=40)
    for q, style in zip((50, 95, 99), ("-", "--", ":"), strict=True):
        ax.axvline(float(np.percentile(latency, q)), color="k", linestyle=style, label=f"p{q}")
    ax.set(title="Latency", xlabel="ms", ylabel="requests")
    ax.legend()
    written.append(_save(fig, out / "latency.png"))

    fig, ax = plt.subplots(figsize=(8, 3))
    ok = [r.confidence for r in records if not r.flagged]
    bad = [r.confidence for r in records if r.flagged]
    ax.hist([ok, bad], bins=20, range=(0, 1), stacked=True, label=["not flagged", "flagged"])
    ax.set(title="Confidence", xlabel="confidence", ylabel="requests")
    ax.legend()
    written.append(_save(fig, out / "confidence.png"))

    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    for ax, feature in zip(axes, ("width", "height", "brightness"), strict=True):
        values = [float(getattr(r, feature)) for r in records if getattr(r, feature) is not None]
        ref = (reference or {}).get(f"{feature}_mean")
        span = [*values, float(ref)] if ref is not None else values
        if span:  # bins over both sides, so a narrow production range stays visible next to the reference
            lo, hi = min(span), max(span)
            ax.hist(values, bins=30, range=(lo, hi if hi > lo else lo + 1.0))
        if ref is not None:
            ax.axvline(float(ref), color="r", label="training mean")
            ax.legend()
        ax.set(title=f"Input {feature}", ylabel="requests")
    written.append(_save(fig, out / "inputs.png"))

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3))
    over_time = cer_over_time(records, corrections or [])
    for version in dict.fromkeys(v for _, v, _, _ in over_time):
        points = [(t, c) for t, v, _, c in over_time if v == version]
        left.plot([t for t, _ in points], [c for _, c in points], marker="o", label=version[-24:])
    if over_time:
        left.legend(fontsize=7)
    left.set(title="CER on corrected predictions", ylabel="CER")
    left.tick_params(axis="x", labelrotation=30)
    per_version = quality(records, corrections or [])
    right.bar(
        [q.model_version[-24:] for q in per_version],
        [q.flagged / max(1, q.predictions) for q in per_version],
    )
    right.set(title="Share of predictions flagged", ylabel="flagged / predictions")
    right.tick_params(axis="x", labelrotation=15, labelsize=7)
    written.append(_save(fig, out / "quality.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run_monitor(db: str | None, out: Path, since_hours: float | None, model: Path | None = None) -> None:
    """Print the report of the store at ``db`` (the last ``since_hours`` if given); write plots to ``out``."""
    store = Store(db)
    try:
        since = datetime.now(UTC) - timedelta(hours=since_hours) if since_hours else None
        records = store.predictions(since)
        corrections = store.corrections(since)
        print(
            f"monitoring store: {store.engine.url.render_as_string()}"
            + (f", last {since_hours:g} h" if since else "")
        )
    finally:
        store.close()
    reference, note = training_reference(model)
    for line in report(records, reference, note, corrections):
        print(line)
    if records:
        paths = plot(records, reference, Path(out), corrections)
        print("plots: " + ", ".join(str(p) for p in paths))

"""Benchmark results (the dict :mod:`benchmarks.run_all` builds) -> BENCHMARKS.md and PNG plots."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.scoring import error_rates, percentiles

MIB = 2**20
#: issue 4's targets for the shipped model on 2 CPU cores
TARGETS = {"line_s": 0.05, "paragraph_s": 0.5, "cold_s": 2.0, "artifact_mib": 25.0, "real_cer": 0.25}


def fmt(x: float | None, spec: str = ".3f", unit: str = "") -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:{spec}}{unit}"


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or not theirs or math.isnan(ours) or math.isnan(theirs):
        return "n/a"
    return f"{ours / theirs:.2f}×"


def mib(n: int | None) -> float | None:
    return n / MIB if n else None


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


class Figures:
    """CER, WER and latency (median ``p50``, ``p95``; seconds) per system and data set."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.by: dict[str, dict[str, dict[str, float]]] = {}
        for name, entry in results["systems"].items():
            for set_name, v in (entry.get("eval") or {}).items():
                cer, wer = error_rates((it["truth"], it["text"]) for it in v["items"])
                p50, p95 = percentiles([it["seconds"] for it in v["items"]], (50, 95))
                self.by.setdefault(name, {})[set_name] = {"cer": cer, "wer": wer, "p50": p50, "p95": p95}

    def get(self, system: str, data: str, key: str) -> float | None:
        return self.by.get(system, {}).get(data, {}).get(key)


# ----------------------------------------------------------------------------------------------- plots


def plot_all(results: dict[str, Any], out: Path) -> list[Path]:
    """CER per system and data set, latency per image, API latency under load -> PNG files in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    figs = Figures(results)
    systems = [n for n in results["systems"] if n in figs.by]
    labels = [results["systems"][n]["label"] for n in systems]
    sets = [s["name"] for s in results["sets"]]
    paths = []

    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(len(systems), 1)
    for k, name in enumerate(systems):
        cers = [figs.get(name, s, "cer") or float("nan") for s in sets]
        ax.bar([i + k * width for i in range(len(sets))], cers, width, label=labels[k])
    ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(sets))], sets)
    ax.set_ylabel("character error rate (lower is better)")
    ax.set_title("CER per system and data set")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    paths.append(_save(plt, fig, out / "cer.png"))

    kinds = sorted({s["kind"] for s in results["sets"]})
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        data = [
            [it["seconds"] * 1000 for v in results["systems"][n]["eval"].values() if v["kind"] == kind
             for it in v["items"]]
            for n in systems
        ]  # fmt: skip
        ax.boxplot(data)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=10)
        ax.set_yscale("log")
        ax.set_ylabel("ms per image (log scale)")
        ax.set_title(f"latency per {kind} (all sets)")
    paths.append(_save(plt, fig, out / "latency.png"))

    runs = results.get("load", {}).get("runs", [])
    if runs:
        fig, ax = plt.subplots(figsize=(6, 4))
        for run in runs:
            lat = sorted(run["latencies_ms"])
            ax.plot(lat, [(i + 1) / len(lat) for i in range(len(lat))], label=f"{run['clients']} clients")
        ax.set_xlabel("POST /predict latency (ms)")
        ax.set_ylabel("fraction of requests")
        ax.set_title("API latency under load (loopback)")
        ax.legend()
        paths.append(_save(plt, fig, out / "api_latency.png"))
    return paths


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------- markdown


def render(results: dict[str, Any], plots: list[Path], out: Path) -> str:
    """The whole BENCHMARKS.md; plot links are relative to ``out``'s folder."""
    figs = Figures(results)
    ran = [n for n in results["systems"] if n in figs.by]
    kind = "quick smoke run on a handful of images: not figures to quote" if results["quick"] else "full run"
    parts = [
        "# Benchmarks",
        f"Written by `{results['command']}` ({kind}). Every figure was measured in this one run, on this "
        "machine, with the same images for every system. `make bench` writes this file again.",
        results.get("busy_note", ""),
        "## Machine\n\n" + table(["", ""], [[k, v] for k, v in results["machine"].items()]),
        _systems(results),
        _targets(results, figs),
        _accuracy(results, figs, ran),
        _latency(results, figs, ran),
        _footprint(results, ran),
        _ratios(results, figs, [n for n in ran if n != "ours"]),
        _throughput(results),
        _load(results),
    ]
    if plots:
        links = (os.path.relpath(p, out.parent) for p in plots)
        parts.append("## Plots\n\n" + "\n\n".join(f"![{Path(link).stem}]({link})" for link in links))
    parts.append(METHOD)
    return "\n\n".join(p for p in parts if p) + "\n"


def _systems(results: dict[str, Any]) -> str:
    rows = [
        [s["label"], s.get("version") or "—", "ran" if s.get("eval") else f"**not run**: {s['missing']}"]
        for s in results["systems"].values()
    ]
    return "## Systems\n\n" + table(["system", "version", "status"], rows)


def _targets(results: dict[str, Any], figs: Figures) -> str:
    ours = results["systems"]["ours"]
    synth = {s["kind"]: s["name"] for s in results["sets"] if not s["real"]}
    real = [s["name"] for s in results["sets"] if s["real"]]

    def row(what: str, value: float | None, target: float, spec: str, unit: str) -> list[str]:
        verdict = "n/a" if value is None else ("met" if value <= target else "**missed**")
        return [what, fmt(value, spec, unit), f"≤ {target:g}{unit}", verdict]

    line, paragraph = figs.get("ours", synth["line"], "p50"), figs.get("ours", synth["paragraph"], "p50")
    rows = [
        row("one line (median)", line, TARGETS["line_s"], ".3f", " s"),
        row("one paragraph (median)", paragraph, TARGETS["paragraph_s"], ".3f", " s"),
        row(
            "cold start: import, load, first paragraph",
            ours["cold"]["cold_s"],
            TARGETS["cold_s"],
            ".2f",
            " s",
        ),
        row("artifact size", mib(ours.get("model_bytes")), TARGETS["artifact_mib"], ".1f", " MiB"),
    ]
    for name in real:
        rows.append(row(f"CER on `{name}`", figs.get("ours", name, "cer"), TARGETS["real_cer"], ".3f", ""))
    return "## Targets (issue 4, 2 CPU cores)\n\n" + table(["figure", "ours", "target", ""], rows)


def _accuracy(results: dict[str, Any], figs: Figures, ran: list[str]) -> str:
    label = {n: results["systems"][n]["label"] for n in ran}
    sets = results["sets"]
    described = ", ".join(
        f"`{s['name']}` ({s['n']} {s['kind']}s{', real handwriting' if s['real'] else ''})" for s in sets
    )
    rows = [[s["name"], *[fmt(figs.get(n, s["name"], k)) for k in ("cer", "wer") for n in ran]] for s in sets]
    header = ["data set", *[f"{label[n]} {k}" for k in ("CER", "WER") for n in ran]]
    return (
        "## Accuracy\n\nCER and WER over each whole set (total edits / total length of the truth), lower is "
        f"better. Sets: {described}.\n\n" + table(header, rows)
    )


def _latency(results: dict[str, Any], figs: Figures, ran: list[str]) -> str:
    rows = [
        [
            s["name"],
            *[f"{fmt(figs.get(n, s['name'], 'p50'))} / {fmt(figs.get(n, s['name'], 'p95'))}" for n in ran],
        ]
        for s in results["sets"]
    ]
    header = ["data set", *[f"{results['systems'][n]['label']}" for n in ran]]
    return (
        "## Latency per image\n\nSeconds to read one image already decoded in memory, after a warm-up "
        "read: median / 95th percentile.\n\n" + table(header, rows)
    )


def _footprint(results: dict[str, Any], ran: list[str]) -> str:
    rows = []
    for n in ran:
        s = results["systems"][n]
        rows.append(
            [
                s["label"],
                fmt(s["cold"]["cold_s"], ".2f", " s"),
                fmt(s["cold"]["process_s"], ".2f", " s"),
                fmt(s["cold"]["peak_rss_mb"], ".0f", " MiB"),
                fmt(s["peak_rss_mb"], ".0f", " MiB"),
                fmt(mib(s.get("model_bytes")), ".1f", " MiB"),
                fmt(mib(s.get("install_bytes")), ".0f", " MiB"),
                s.get("install_note", ""),
            ]
        )
    header = [
        "system",
        "cold start",
        "process",
        "peak RSS, cold",
        "peak RSS, whole run",
        "model",
        "installed",
    ]
    return (
        "## Start-up, memory and size\n\n"
        "Cold start: a fresh process imports the system, loads its model and reads one paragraph (median of "
        f"{results['config']['cold_repeats']} run(s)); 'process' also counts starting the interpreter. Peak "
        "memory: the high-water mark of the resident set (for Tesseract, of its largest process).\n\n"
        + table([*header, "what 'installed' counts"], rows)
    )


def _ratios(results: dict[str, Any], figs: Figures, peers: list[str]) -> str:
    if not peers:
        return ""
    systems = results["systems"]
    ours = systems["ours"]
    rows = []
    for s in results["sets"]:
        for key, what in (("cer", "CER"), ("p50", "median latency")):
            values = [ratio(figs.get("ours", s["name"], key), figs.get(p, s["name"], key)) for p in peers]
            rows.append([f"{what}, `{s['name']}`", *values])
    rows.append(["cold start", *[ratio(ours["cold"]["cold_s"], systems[p]["cold"]["cold_s"]) for p in peers]])
    for key, what in (
        ("peak_rss_mb", "peak RSS"),
        ("model_bytes", "model size"),
        ("install_bytes", "installed"),
    ):
        rows.append([what, *[ratio(ours.get(key), systems[p].get(key)) for p in peers]])
    header = ["figure", *[f"ours / {systems[p]['label']}" for p in peers]]
    return (
        "## Ours as a ratio to each peer\n\nOurs divided by theirs: below 1× is better for us (fewer errors, "
        "less time, memory or disk).\n\n" + table(header, rows)
    )


def _throughput(results: dict[str, Any]) -> str:
    t = results["throughput"]
    rates = {int(k): float(v) for k, v in t["rates"].items()}
    base = rates[min(rates)]
    rows = [[str(b), fmt(r, ".1f"), fmt(r / base, ".2f", "×")] for b, r in sorted(rates.items())]
    return (
        f"## Batching\n\nOur predictor reading {t['n']} synthetic lines, prepared beforehand (decoded, "
        "normalised, resized), with `Predictor.recognize` at each batch size.\n\n"
        + table(["batch size", "lines/s", "speed-up"], rows)
    )


def _load(results: dict[str, Any]) -> str:
    load = results["load"]
    if "error" in load:
        return f"## API under load\n\n**failed**: {load['error']}"
    rows = [
        [
            str(r["clients"]),
            fmt(r["seconds"], ".0f", " s"),
            str(r["requests"]),
            fmt(r["rps"], ".1f"),
            " / ".join(fmt(r[k], ".0f") for k in ("p50_ms", "p95_ms", "p99_ms")),
            str(r["errors"]) + (f" {r['error_kinds']}" if r["errors"] else ""),
            f"{fmt(r['rss_before_mb'], '.0f')} → {fmt(r['rss_after_mb'], '.0f')}",
        ]
        for r in load["runs"]
    ]
    header = [
        "clients",
        "duration",
        "requests",
        "requests/s",
        "p50 / p95 / p99 (ms)",
        "errors",
        "server RSS (MiB)",
    ]
    return (
        "## API under load\n\n`text-recognizer serve` as `make run` starts it (API and web page, one worker, "
        f"SQLite store) on loopback. Concurrent clients post `POST /predict` with the {load['n_images']} "
        "synthetic line images in turn; they run on the same machine. Server memory after start-up: "
        f"{fmt(load['server_rss_started_mb'], '.0f')} MiB; before → after each run below.\n\n"
        + table(header, rows)
    )


METHOD = """## Method

- Synthetic test sets: `text-recognizer synth --split test` with fixed seeds (text and fonts disjoint from
  training). Real handwriting is read in place from `../shared/real-handwriting/` when that folder exists;
  nothing was trained or tuned on it.
- Texts are compared after folding typographic punctuation to ASCII, collapsing spaces and dropping empty
  lines; a line break counts as one character.
- Every system gets the same decoded grayscale image in memory and is timed from there. Ours gets it as it
  is. The peers get it as dark ink on light paper (inverted when the median pixel is dark), and a line image
  also cropped to its ink, which reads better for both of them.
- Tesseract: the `tesseract` command, one process per image (`--psm 7` for a line, `--psm 6` for a
  paragraph), English data from Debian. RapidOCR: its Python API with the default models shipped in its
  wheel; paragraphs through detection, orientation and recognition, line images through its recogniser
  alone. Each system runs in a fresh process with network access refused; RapidOCR in its own virtual
  environment (`.cache/bench-venv`), never installed with the product.
- Installed size: for ours, the Python packages `pip install '.[serve]'` brings (the dependency closure of
  `text-recognizer[serve]` as installed, or a fresh virtual environment with `--install-size`); for
  RapidOCR, its virtual environment less pip and setuptools; for Tesseract, its own Debian packages."""

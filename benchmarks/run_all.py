"""``make bench``: measure ours against Tesseract and RapidOCR in one run and write BENCHMARKS.md.

    python -m benchmarks.run_all                 the full run (a few minutes on 2 cores)
    python -m benchmarks.run_all --quick         a smoke run on a handful of images (to .cache/bench/quick/)

Steps: make the synthetic test sets (fixed seeds) -> find the real handwriting folders -> set up the peers
(RapidOCR in .cache/bench-venv) -> each system reads every set in a fresh process -> cold starts ->
batching throughput -> sizes -> the API under load -> BENCHMARKS.md and benchmarks/plots/*.png.
The raw results go to .cache/bench/results.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import footprint, systems
from benchmarks.load_test import load_test
from benchmarks.machine import busy_note, machine_info
from benchmarks.report import plot_all, render
from benchmarks.throughput import batching_throughput
from text_recognizer.data.folder import read_labels
from text_recognizer.inference.manifest import ArtifactError, Manifest
from text_recognizer.paths import default_artifact, repo_root

REPO = repo_root()
CACHE = REPO / ".cache" / "bench"
WORKER = Path(__file__).with_name("reader_worker.py")
#: Real handwriting for measuring only, beside the checkout (never copied into it)
REAL_HANDWRITING = REPO.parent / "shared" / "real-handwriting"


@dataclass(frozen=True)
class BenchConfig:
    """What one run measures; :meth:`quick_run` is the smoke version."""

    lines: int = 200
    paragraphs: int = 30
    seed: int = 1
    cold_repeats: int = 3
    throughput_lines: int = 128
    clients: tuple[int, ...] = (8, 32)
    duration_s: float = 60.0
    out: Path = REPO / "BENCHMARKS.md"
    plots: Path = REPO / "benchmarks" / "plots"
    quick: bool = False

    @classmethod
    def quick_run(cls) -> BenchConfig:
        return cls(
            quick=True,
            lines=8,
            paragraphs=3,
            cold_repeats=1,
            throughput_lines=16,
            duration_s=5.0,
            out=CACHE / "quick" / "BENCHMARKS.md",
            plots=CACHE / "quick" / "plots",
        )


@dataclass(frozen=True)
class DataSet:
    name: str
    kind: str
    path: Path
    n: int
    real: bool


def renderer_fingerprint() -> str:
    """Hash of the synthetic data engine's code (``text_recognizer/data/synth``): a changed renderer draws
    other images for the same seed, so the cached test sets are keyed by it."""
    digest = hashlib.sha256()
    for f in sorted((REPO / "text_recognizer" / "data" / "synth").glob("*.py")):
        digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:10]


def synth_set(kind: str, count: int, seed: int) -> DataSet:
    """The synthetic test split, rendered once per renderer version into .cache/bench/data (reused while the
    renderer's code is unchanged: :func:`renderer_fingerprint`)."""
    path = CACHE / "data" / f"synth-{kind}-test-n{count}-seed{seed}-{renderer_fingerprint()}"
    if not (path / "labels.jsonl").exists():
        cmd = [sys.executable, "-m", "text_recognizer.cli", "synth", "--kind", kind, "--split", "test"]
        subprocess.run([*cmd, "--count", str(count), "--seed", str(seed), "--out", str(path)], check=True)
    return DataSet(f"synthetic {kind}s", kind, path, count, real=False)


def real_sets(folder: Path, limit: int | None) -> list[DataSet]:
    """Each labels.jsonl folder under ``folder`` (read in place, never copied); they hold paragraphs."""
    if not folder.is_dir():
        return []
    out = []
    for labels in sorted(folder.glob("*/labels.jsonl")):
        n = len(read_labels(labels.parent))
        out.append(DataSet(labels.parent.name, "paragraph", labels.parent, min(n, limit or n), real=True))
    return out


def run_worker(system: systems.System, args: list[str], model: Path) -> dict[str, Any]:
    """Run the reader worker for ``system``; returns its JSON and the wall time of the whole process."""
    assert system.python is not None
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [system.python, str(WORKER), "--system", system.name, "--model", str(model), "--out", str(out)]
        started = time.perf_counter()
        subprocess.run([*cmd, *args], check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        result["process_s"] = time.perf_counter() - started
    return result


def measure_system(
    system: systems.System, sets: list[DataSet], model: Path, cfg: BenchConfig
) -> dict[str, Any]:
    print(f"== {system.label}: reading {sum(s.n for s in sets)} images", flush=True)
    specs = [a for s in sets for a in ("--set", f"{s.name}:{s.kind}:{s.path}")]
    evaluation = run_worker(system, specs, model)
    for s in sets:  # a real folder limited in quick mode keeps its first n
        evaluation["sets"][s.name]["items"] = evaluation["sets"][s.name]["items"][: s.n]
    paragraph = next(s for s in sets if s.kind == "paragraph" and not s.real)
    image = paragraph.path / read_labels(paragraph.path)[0].image
    colds = [
        run_worker(system, ["--cold", str(image), "--kind", "paragraph"], model)
        for _ in range(cfg.cold_repeats)
    ]
    cold = {
        k: statistics.median(c[k] for c in colds)
        for k in ("load_s", "first_s", "cold_s", "process_s", "peak_rss_mb")
    }
    return {
        "version": evaluation["version"],
        "eval": evaluation["sets"],
        "peak_rss_mb": evaluation["peak_rss_mb"],
        "cold": cold,
    }


def largest(dists: dict[str, int], n: int = 4) -> str:
    top = sorted(dists.items(), key=lambda kv: -kv[1])[:n]
    return f"{len(dists)} packages, largest " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in top)


def sizes(system: systems.System, model: Path, install_size: bool) -> dict[str, Any]:
    if system.name == "ours":
        if install_size:
            dists = footprint.fresh_venv_size(".[serve]", REPO)
            note = "fresh venv with `pip install '.[serve]'`"
        else:
            dists = footprint.python_dists_size(sys.executable, "text-recognizer[serve]")
            note = "dependencies of `text-recognizer[serve]` as installed here"
        return {
            "model_bytes": footprint.dir_size(model),
            "install_bytes": sum(dists.values()),
            "install_note": f"{note}: {largest(dists)}",
        }
    if system.name == "tesseract":
        return {
            "model_bytes": footprint.tesseract_model_size(),
            "install_bytes": footprint.dpkg_size(footprint.TESSERACT_PACKAGES),
            "install_note": "Debian packages " + ", ".join(footprint.TESSERACT_PACKAGES),
        }
    assert system.python is not None
    dists = footprint.python_dists_size(system.python)
    return {
        "model_bytes": footprint.rapidocr_model_size(system.python),
        "install_bytes": sum(dists.values()),
        "install_note": f"its virtual environment less pip: {largest(dists)}",
    }


def run(cfg: BenchConfig, model: Path, real: Path, setup: bool, install_size: bool, command: str) -> int:
    try:
        Manifest.read(model, verify=False)
    except ArtifactError as e:
        raise SystemExit(
            f"no staged model at {model} ({e}); stage one (`text-recognizer stage`) or give --model"
        ) from e
    results: dict[str, Any] = {"command": command, "quick": cfg.quick, "machine": machine_info(REPO)}
    results["busy_note"] = busy_note()
    results["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    lines, paragraphs = (
        synth_set("line", cfg.lines, cfg.seed),
        synth_set("paragraph", cfg.paragraphs, cfg.seed),
    )
    sets = [lines, paragraphs, *real_sets(real, cfg.paragraphs)]
    results["sets"] = [
        {"name": s.name, "kind": s.kind, "path": str(s.path), "n": s.n, "real": s.real} for s in sets
    ]

    candidates = [
        systems.ours(),
        systems.tesseract(),
        systems.rapidocr(REPO / ".cache" / "bench-venv", setup),
    ]
    results["systems"] = {}
    for system in candidates:
        entry: dict[str, Any] = {"label": system.label, "missing": system.missing}
        if system.python is not None:
            try:
                entry.update(measure_system(system, sets, model, cfg))
                entry.update(sizes(system, model, install_size))
            except subprocess.CalledProcessError as e:
                if system.name == "ours":
                    raise
                entry = {"label": system.label, "missing": f"failed ({e})"}
        results["systems"][system.name] = entry

    print("== batching throughput", flush=True)
    rates = batching_throughput(lines.path, model, cfg.throughput_lines)
    results["throughput"] = {"n": min(cfg.throughput_lines, lines.n), "rates": rates}

    print("== API under load", flush=True)
    try:
        images = [e.image for e in read_labels(lines.path)]
        results["load"] = load_test(model, images, cfg.clients, cfg.duration_s)
    except (RuntimeError, TimeoutError, OSError) as e:
        results["load"] = {"error": str(e)}

    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "results.json").write_text(json.dumps(results))
    write_report(results, cfg)
    load = results["load"]
    failed = "error" in load or any(r["errors"] for r in load["runs"])
    if failed:
        print("the API load test had errors; see the report", file=sys.stderr)
    return 1 if failed else 0


def write_report(results: dict[str, Any], cfg: BenchConfig) -> None:
    plots = plot_all(results, cfg.plots)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(render(results, plots, cfg.out))
    print(f"wrote {cfg.out} and {len(plots)} plots in {cfg.plots}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run on a handful of images")
    parser.add_argument("--out", type=Path, help="report to write (default BENCHMARKS.md)")
    parser.add_argument("--plots", type=Path, help="folder for the plots (default benchmarks/plots)")
    parser.add_argument(
        "--model", type=Path, default=None, help="artifact folder (default: the shipped model)"
    )
    parser.add_argument(
        "--real",
        type=Path,
        default=REAL_HANDWRITING,
        help="folder of real-handwriting labels.jsonl folders, read in place",
    )
    parser.add_argument("--duration", type=float, help="seconds of API load per client count (default 60)")
    parser.add_argument(
        "--no-setup", action="store_true", help="do not create the RapidOCR venv when missing"
    )
    parser.add_argument(
        "--install-size",
        action="store_true",
        help="measure our install size in a fresh venv (pip install '.[serve]', needs the registry)",
    )
    parser.add_argument("--from-results", type=Path, help="only write the report from a results.json")
    args = parser.parse_args()
    cfg = BenchConfig.quick_run() if args.quick else BenchConfig()
    overrides = {"out": args.out, "plots": args.plots, "duration_s": args.duration}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if args.from_results:
        write_report(json.loads(args.from_results.read_text()), cfg)
        return
    command = "python -m benchmarks.run_all " + " ".join(sys.argv[1:])
    model = args.model or default_artifact()
    raise SystemExit(run(cfg, model, args.real, not args.no_setup, bool(args.install_size), command.strip()))


if __name__ == "__main__":
    main()

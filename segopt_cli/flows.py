"""`segopt optimize-all` and `segopt nightly-benchmark`: the Prefect flows, run ad hoc without a server.

Without PREFECT_API_URL, Prefect starts a temporary local API for the run (ephemeral mode); with it set,
the run is recorded on that server like a deployment run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from segopt_cli.common import (
    BACKENDS_OPTION,
    FAILED_EXIT,
    PRECISIONS_OPTION,
    USAGE_EXIT,
    VARIANTS_OPTION,
    fail,
    parse_batch_sizes,
    split_list,
)
from segopt_core.pipeline.params import NIGHTLY_DEFAULTS as NIGHTLY
from segopt_core.pipeline.params import OPTIMIZE_ALL_DEFAULTS as OPTIMIZE_ALL
from segopt_core.pipeline.params import NightlyParams, OptimizeAllParams

RUNNER_HELP = (
    "threads (local thread pool) | dask (local cluster on 127.0.0.1, or --dask-address); "
    "default SEGOPT_TASK_RUNNER, else threads"
)
DASK_HELP = "Dask scheduler, e.g. tcp://HOST:8786 (default SEGOPT_DASK_ADDRESS)."
UNTRACKED_HELP = "Do not log to MLflow (said in summary.md); else a dead tracking URI stops the run first."


def _sizes(batch_sizes: list[int]) -> str:
    return ",".join(map(str, batch_sizes))


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _reason(state) -> str:
    """The exception's own message, not Prefect's "Flow run encountered an exception: OSError: ..."."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the result could not be read back: Prefect's message is all there is
        exc = None
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror if exc.filename is None else f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, BaseException) and str(exc):
        return str(exc)
    return state.message or "see the log above"


def _debug() -> bool:
    """`segopt --debug ...`: keep full tracebacks on the console."""
    import click

    context = click.get_current_context(silent=True)
    return bool(context and context.find_root().params.get("debug"))


def _failure_code(state) -> int:
    """2 when the flow stopped on bad input (a ValueError-based domain error), else 1 (the work failed)."""
    from segopt_core.errors import SegoptError

    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the result could not be read back: the work failed
        return FAILED_EXIT
    return USAGE_EXIT if isinstance(exc, SegoptError) and isinstance(exc, ValueError) else FAILED_EXIT


def _run(flow_path: str, params, task_runner: str | None, dask_address: str | None) -> None:
    """Check the parameters' inputs, then run the flow ('module:function') with the chosen task runner
    (default: the settings'); exit 2 on bad input, 1 with the reason when the work failed."""
    import importlib

    from flows.parameters import TASK_RUNNERS, preflight
    from segopt_core.pipeline.selection import check_names
    from segopt_core.settings import load_settings

    settings = load_settings()
    check_names("task runner", [task_runner or settings.task_runner], TASK_RUNNERS)
    preflight(params)  # before Prefect or torch's heavier half load: the paths, the data set, the work folder
    from flows.lifecycle import prepare_ad_hoc_run
    from flows.runners import make_task_runner

    module, name = flow_path.split(":")
    flow = getattr(importlib.import_module(module), name)
    runner = make_task_runner(task_runner or settings.task_runner, dask_address or settings.dask_address)
    prepare_ad_hoc_run(flow.name, _debug())  # SIGTERM/SIGINT stop it in seconds; no child server outlives it
    state = flow.with_options(task_runner=runner)(**params.model_dump(), return_state=True)
    if not state.is_completed():
        fail(f"{flow.name} {state.name.lower()}: {_reason(state)}", code=_failure_code(state))
    report = Path(state.result())
    typer.echo(f"report: {report / 'summary.md'}")


def optimize_all_command(
    paths: list[Path] = typer.Argument(None, help="Checkpoint files/folders (default <work-dir>/zoo)."),
    cells: list[str] = typer.Option(None, "--cells", help="Cell-name patterns (repeat or comma-separate)."),
    backends: list[str] = BACKENDS_OPTION,
    precisions: list[str] = PRECISIONS_OPTION,
    variants: list[str] = VARIANTS_OPTION,
    batch_sizes: str = typer.Option(
        _sizes(OPTIMIZE_ALL.batch_sizes), "--batch-sizes", help="Comma-separated batch sizes."
    ),
    data: Path = typer.Option(None, "--data", help="Labelled validation set (else agreement with fp32)."),
    limit: int = typer.Option(OPTIMIZE_ALL.limit, "--limit", help="Evaluation images per variant."),
    warmup: int = typer.Option(OPTIMIZE_ALL.warmup, "--warmup", help="Warm-up calls per batch size."),
    iters: int = typer.Option(OPTIMIZE_ALL.iters, "--iters", help="Timed calls per batch size."),
    min_miou_ratio: float = typer.Option(
        OPTIMIZE_ALL.min_miou_ratio, "--min-miou-ratio", help="Accuracy gate: mIoU / fp32 mIoU."
    ),
    task_runner: str = typer.Option(None, "--task-runner", help=RUNNER_HELP),
    dask_address: str = typer.Option(None, "--dask-address", help=DASK_HELP),
    work_dir: Path = typer.Option(None, "--work-dir", help="Artifacts, result cache (default segopt-work)."),
    report_dir: Path = typer.Option(None, "--report-dir", help="Reports and history (default reports)."),
    demo_zoo: bool = typer.Option(False, "--demo-zoo", help="Write the tiny demo zoo if PATHS are empty."),
    log_models: bool = typer.Option(False, "--log-models", help="Also upload model files to MLflow."),
    untracked: bool = typer.Option(False, "--untracked", help=UNTRACKED_HELP),
) -> None:
    """Discover checkpoints, build every variant, benchmark, verify accuracy, report and track."""
    params = OptimizeAllParams.from_cli(
        paths=[str(p) for p in paths or ()], cells=split_list(cells), backends=split_list(backends),
        precisions=split_list(precisions), variants=split_list(variants),
        batch_sizes=parse_batch_sizes(batch_sizes), data_dir=_text(data), limit=limit, warmup=warmup,
        iters=iters, min_miou_ratio=min_miou_ratio, work_dir=_text(work_dir), report_dir=_text(report_dir),
        demo_zoo_if_empty=demo_zoo, log_models=log_models, track=not untracked,
    )  # fmt: skip
    _run("flows.optimize_all:optimize_all", params, task_runner, dask_address)


def nightly_benchmark_command(
    cells: list[str] = typer.Option(None, "--cells", help="Cell-name patterns (repeat or comma-separate)."),
    variants: list[str] = VARIANTS_OPTION,
    batch_sizes: str = typer.Option(
        _sizes(NIGHTLY.batch_sizes), "--batch-sizes", help="Comma-separated batch sizes."
    ),
    warmup: int = typer.Option(NIGHTLY.warmup, "--warmup", help="Warm-up calls per batch size."),
    iters: int = typer.Option(NIGHTLY.iters, "--iters", help="Timed calls per batch size."),
    window: int = typer.Option(
        NIGHTLY.window, "--window", help="Previous runs the baseline median is taken over."
    ),
    threshold: float = typer.Option(
        NIGHTLY.threshold, "--threshold", help="Latency increase flagged as regression."
    ),
    fail_on_regression: bool = typer.Option(
        NIGHTLY.fail_on_regression, "--fail-on-regression", help="Exit 1 on a regression."
    ),
    task_runner: str = typer.Option(None, "--task-runner", help=RUNNER_HELP),
    dask_address: str = typer.Option(None, "--dask-address", help=DASK_HELP),
    work_dir: Path = typer.Option(None, "--work-dir", help="Where optimize-all stored artifacts."),
    report_dir: Path = typer.Option(None, "--report-dir", help="Reports and history (default reports)."),
    untracked: bool = typer.Option(False, "--untracked", help=UNTRACKED_HELP),
) -> None:
    """Re-benchmark the stored artifacts, append to the history and flag regressions."""
    params = NightlyParams.from_cli(
        cells=split_list(cells), variants=split_list(variants), batch_sizes=parse_batch_sizes(batch_sizes),
        warmup=warmup, iters=iters, window=window, threshold=threshold,
        fail_on_regression=fail_on_regression, work_dir=_text(work_dir), report_dir=_text(report_dir),
        track=not untracked,
    )  # fmt: skip
    _run("flows.nightly:nightly_benchmark", params, task_runner, dask_address)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("optimize-all")(optimize_all_command)
    app.command("nightly-benchmark")(nightly_benchmark_command)

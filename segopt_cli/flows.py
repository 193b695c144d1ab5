"""`segopt optimize-all` and `segopt nightly-benchmark`: the Prefect flows, run ad hoc without a server.

Without PREFECT_API_URL, Prefect starts a temporary local API for the run (ephemeral mode); with it set,
the run is recorded on that server like a deployment run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from segopt_cli.common import (
    BACKENDS_OPTION,
    PRECISIONS_OPTION,
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


def _check_tracking(untracked: bool) -> None:
    """The tracking URI answers (TrackingUnavailable, exit 2, within seconds) unless the run is untracked."""
    from segopt_tracking.store import probe_tracking

    if not untracked:
        probe_tracking()


def _check_data(data: Path, limit: int | None) -> None:
    """Fail fast (exit 2, one line) on a dataset the evaluations could not read, before anything is built."""
    from segopt_core.data import DatasetError
    from segopt_core.pipeline.stages import check_data

    try:
        check_data(data, limit)
    except DatasetError as err:
        fail(str(err))


def _sizes(batch_sizes: list[int]) -> str:
    return ",".join(map(str, batch_sizes))


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


def _run(flow, task_runner: str | None, dask_address: str | None, **params) -> None:
    """Run a flow with the chosen task runner (default: the settings'); exit 1 with the reason on failure."""
    from flows.lifecycle import prepare_ad_hoc_run
    from flows.runners import make_task_runner
    from segopt_core.settings import load_settings

    settings = load_settings()
    try:
        runner = make_task_runner(task_runner or settings.task_runner, dask_address or settings.dask_address)
    except ValueError as exc:
        fail(str(exc))
    prepare_ad_hoc_run(flow.name, _debug())  # SIGTERM/SIGINT stop it in seconds; no child server outlives it
    state = flow.with_options(task_runner=runner)(**params, return_state=True)
    if not state.is_completed():
        fail(f"{flow.name} {state.name.lower()}: {_reason(state)}", code=1)
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
    _check_tracking(untracked)  # first: seconds, before torch is even imported
    import torch

    from segopt_core.pipeline.jobs import check_run_options

    cells, backends, precisions, variants = map(split_list, (cells, backends, precisions, variants))
    sizes = parse_batch_sizes(batch_sizes)
    check_run_options(cells, backends, precisions, variants, sizes, torch.cuda.is_available())  # exit 2
    if data is not None:
        _check_data(data, limit)
    from flows.optimize_all import optimize_all

    params = OptimizeAllParams(
        paths=[str(p) for p in paths] if paths else None, cells=cells, backends=backends,
        precisions=precisions, variants=variants, batch_sizes=sizes,
        data_dir=str(data) if data else None, limit=limit, warmup=warmup, iters=iters,
        min_miou_ratio=min_miou_ratio, work_dir=str(work_dir) if work_dir else None,
        report_dir=str(report_dir) if report_dir else None, demo_zoo_if_empty=demo_zoo, log_models=log_models,
        track=not untracked,
    )  # fmt: skip
    _run(optimize_all, task_runner, dask_address, **params.model_dump())


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
    _check_tracking(untracked)  # first: seconds, before torch is even imported
    from segopt_core.pipeline.stored import check_nightly_options
    from segopt_core.settings import load_settings

    cells, variants, sizes = split_list(cells), split_list(variants), parse_batch_sizes(batch_sizes)
    check_nightly_options((work_dir or load_settings().work_dir) / "artifacts", cells, variants, sizes)
    from flows.nightly import nightly_benchmark

    params = NightlyParams(
        cells=cells, variants=variants, batch_sizes=sizes, warmup=warmup,
        iters=iters, window=window, threshold=threshold, fail_on_regression=fail_on_regression,
        work_dir=str(work_dir) if work_dir else None, report_dir=str(report_dir) if report_dir else None,
        track=not untracked,
    )  # fmt: skip
    _run(nightly_benchmark, task_runner, dask_address, **params.model_dump())


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("optimize-all")(optimize_all_command)
    app.command("nightly-benchmark")(nightly_benchmark_command)

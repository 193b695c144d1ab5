"""What every segopt command shares: one-line errors, list and batch-size parsing, offline defaults.

Every error path of the CLI ends in one red line on stderr and a non-zero exit: 2 for bad input (usage
errors and domain errors that subclass ValueError), 1 for work that failed. `segopt --debug ...` shows the
traceback instead.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

# The variant filters of `optimize-all` and `segopt benchmark` (filters of the machine's default variants).
BACKENDS_OPTION = typer.Option(
    None, "--backends", help="Backends, e.g. torch,onnxruntime (a wrong name lists the valid ones)."
)
PRECISIONS_OPTION = typer.Option(
    None, "--precisions", help="Precisions, e.g. fp32,int8-dynamic (a wrong name lists the valid ones)."
)
VARIANTS_OPTION = typer.Option(None, "--variants", help="Exact variant names, e.g. onnxruntime-fp32.")
USAGE_EXIT = 2  # bad input: the user can fix the command line or the files it names
FAILED_EXIT = 1  # the work itself failed
# optional packages whose absence means a missing extra, not a bug
_EXTRAS = {
    "onnxruntime": "ONNX Runtime is not installed: install segopt[cpu] or segopt[gpu]",
    "tensorrt": "TensorRT is not installed: install segopt[tensorrt] on a CUDA machine",
    "torchao": "torchao is not installed: install segopt[pt2e]",
}


def fail(message: str, code: int = USAGE_EXIT) -> NoReturn:
    """One red `error: ...` line on stderr, then exit (2 = bad input by default)."""
    end_progress_bars()
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def end_progress_bars() -> None:
    """Close every tqdm bar still drawn: the error then starts on a line of its own, and no bar is redrawn
    after it (a bar left open by a failed loop is otherwise closed, and redrawn, when it is collected)."""
    import sys

    module = sys.modules.get("tqdm.std")  # tqdm.auto and tqdm.tqdm share its set of open bars
    for bar in list(getattr(getattr(module, "tqdm", None), "_instances", ())):
        bar.close()


def split_list(values: str | list[str] | None) -> list[str] | None:
    """Repeated and/or comma-separated option values as one list ('a,b' + 'c' -> [a, b, c]); None if empty."""
    values = [values] if isinstance(values, str) else values or []
    parts = [p.strip() for v in values for p in v.split(",") if p.strip()]
    return parts or None


def parse_batch_sizes(text: str, flag: str = "--batch-sizes") -> list[int]:
    """'1,4,8' -> [1, 4, 8]; a one-line error unless every entry is a batch size (segopt_core.batches)."""
    from segopt_core.batches import MAX_BATCH_SIZE, check_batch_sizes

    try:
        return check_batch_sizes([int(p) for p in split_list(text) or []])
    except ValueError:
        fail(f"{flag} {text!r}: expected comma-separated integers from 1 to {MAX_BATCH_SIZE}, e.g. 1,4,8")


def parse_size(text: str, flag: str) -> tuple[int, int]:
    """'HxW' (or 'H,W') -> (h, w); a one-line error unless both are positive integers."""
    try:
        height, width = (int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        fail(f"{flag} {text!r} is not HxW (e.g. 512x512)")
    if height < 1 or width < 1:
        fail(f"{flag} {text!r} must be positive")
    return height, width


def figure(value: float | None, digits: int = 4) -> str:
    """A figure for people: `digits` significant digits ('483.4', '0.6129', '12346'; '-' for none).
    Full precision stays in JSON and Parquet."""
    if value is None or value != value:  # None or NaN
        return "-"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:.0f}"
    return f"{float(f'{value:.{digits}g}'):g}" if value else "0"


def percent(value: float | None) -> str:
    """A 0..1 fraction as a percentage with 2 decimals, e.g. 0.61285 -> '61.29 %' ('-' for none)."""
    return "-" if value is None or value != value else f"{100 * value:.2f} %"


def check_positive(value: int | None, flag: str) -> None:
    """A one-line error unless an optional integer option is at least 1."""
    if value is not None and value < 1:
        fail(f"{flag} must be at least 1, got {value}")


def offline_defaults() -> None:
    """No telemetry, time for Prefect's temporary API server to start on a busy machine, and flow-run
    heartbeats (a run whose process dies ends Crashed: flows/crash_detection.py)."""
    from flows.crash_detection import CLI_ENV

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # The temporary server's background services print their own SQLite contention as tracebacks on the
    # user's console (seen: "database is locked" in the event-trigger loop as a failed run ends); the run's
    # outcome is what segopt says itself, and client-side errors still surface through the flow.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    for key, value in CLI_ENV.items():
        os.environ.setdefault(key, value)


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for an exception no command handled itself."""
    from segopt_core.atomic import is_disk_full
    from segopt_core.errors import SegoptError

    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in _EXTRAS:
        return _EXTRAS[exc.name.split(".")[0]], FAILED_EXIT
    text = " ".join(str(exc).split()).strip("'\"") or type(exc).__name__
    if isinstance(exc, SegoptError):
        return text, USAGE_EXIT if isinstance(exc, ValueError) else FAILED_EXIT
    if isinstance(exc, OSError) and exc.strerror:  # the OS's own words and the file, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        if is_disk_full(exc):
            return f"{where}no space left on device; free some space and run again", FAILED_EXIT
        return f"{where}{exc.strerror}", FAILED_EXIT
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    return f"{type(exc).__name__}: {text} (run `segopt --debug ...` for the traceback)", FAILED_EXIT


def fail_on(exc: BaseException) -> NoReturn:
    """One line for a domain error or an OSError: exit 2 for bad input, 1 for failed work (error_line)."""
    fail(*error_line(exc))


def usage_line(exc: Any) -> str:
    """A click usage error (bad option value, unknown option) as one line with the command's --help."""
    ctx = getattr(exc, "ctx", None)
    text = " ".join(exc.format_message().split())
    return f"{text} (see `{ctx.command_path} --help`)" if ctx is not None else text


def _usage_or_raise(exc: Exception) -> NoReturn:
    """One line for a usage error of typer's own click (exit code 2, has a message); re-raise the rest."""
    if getattr(exc, "exit_code", None) == USAGE_EXIT and hasattr(exc, "format_message"):
        fail(usage_line(exc))
    raise exc


class OneLineErrors(TyperGroup):
    """The root command group: an unhandled exception, and a usage error click would draw as a box, become
    one line on stderr unless --debug is given."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except typer.TyperException as exc:
            _usage_or_raise(exc)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except typer.TyperException as exc:
            _usage_or_raise(exc)
        except (Exception, KeyboardInterrupt) as exc:
            if ctx.params.get("debug"):
                raise
            message, code = error_line(exc)
            fail(message, code)

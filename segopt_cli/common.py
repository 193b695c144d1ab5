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
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def split_list(values: str | list[str] | None) -> list[str] | None:
    """Repeated and/or comma-separated option values as one list ('a,b' + 'c' -> [a, b, c]); None if empty."""
    values = [values] if isinstance(values, str) else values or []
    parts = [p.strip() for v in values for p in v.split(",") if p.strip()]
    return parts or None


def parse_batch_sizes(text: str, flag: str = "--batch-sizes") -> list[int]:
    """'1,4,8' -> [1, 4, 8]; a one-line error unless every entry is a positive integer."""
    try:
        sizes = [int(p) for p in split_list(text) or []]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        fail(f"{flag} {text!r}: expected comma-separated positive integers, e.g. 1,4,8")
    return sizes


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
    for key, value in CLI_ENV.items():
        os.environ.setdefault(key, value)


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for an exception no command handled itself."""
    from segopt_core.errors import SegoptError

    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in _EXTRAS:
        return _EXTRAS[exc.name.split(".")[0]], FAILED_EXIT
    text = " ".join(str(exc).split()).strip("'\"") or type(exc).__name__
    if isinstance(exc, SegoptError):
        return text, USAGE_EXIT if isinstance(exc, ValueError) else FAILED_EXIT
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    return f"{type(exc).__name__}: {text} (run `segopt --debug ...` for the traceback)", FAILED_EXIT


class OneLineErrors(TyperGroup):
    """The root command group: an unhandled exception becomes one line on stderr unless --debug is given."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # exits and usage errors typer reports
            raise
        except (Exception, KeyboardInterrupt) as exc:
            if ctx.params.get("debug"):
                raise
            message, code = error_line(exc)
            fail(message, code)

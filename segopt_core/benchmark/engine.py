"""Benchmark any Predictor across batch sizes: one flat, rounded row per batch size; failures are rows too."""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from segopt_core.batches import DEFAULT_BATCH_SIZES, check_batch_sizes
from segopt_core.benchmark.contention import QUALITY_OK, QUALITY_SUSPECT, ContentionProbe, quality_flags
from segopt_core.benchmark.fingerprint import machine_fingerprint
from segopt_core.benchmark.memory import MIB, PeakMemory
from segopt_core.benchmark.schema import empty_row, validate_row
from segopt_core.benchmark.timing import (
    TimingConfig,
    device_synchronizer,
    latency_stats,
    time_call,
    timed_loop,
    warm_up,
)
from segopt_core.errors import SegoptError
from segopt_core.predictor import Predictor
from segopt_core.variants import CellSpec

SCOPES = ("model", "e2e")
# Lower-cased fragments of the messages CUDA, ONNX Runtime and TensorRT use for allocation failures.
_OOM_MARKERS = (
    "out of memory",
    "failed to allocate",
    "bad_alloc",
    "bad allocation",
    "cannot allocate memory",
    "cudaerrormemoryallocation",
    "cuda_error_out_of_memory",
)
RowCallback = Callable[[dict[str, Any]], None]


class BenchmarkError(SegoptError, ValueError):
    """The benchmark was asked for something it cannot measure."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for MemoryError, torch.cuda.OutOfMemoryError and ORT/TensorRT allocation failures."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    message = str(exc).lower()
    return any(marker in message for marker in _OOM_MARKERS)


def describe_error(exc: BaseException) -> str:
    """'TypeName: message' on one line, at most 500 characters."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").strip()
    return text[:500]


def model_size_mib(model: nn.Module | None = None, path: str | Path | None = None) -> float | None:
    """Size on disk of a file/folder when a path is given, else the state-dict bytes of the module, MiB."""
    if path is not None:
        path = Path(path)
        files = (
            [path] if path.is_file() else _shipped_files(path) or [p for p in path.rglob("*") if p.is_file()]
        )
        return sum(p.stat().st_size for p in files) / MIB
    if model is not None:
        return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / MIB
    return None


def _shipped_files(folder: Path) -> list[Path]:
    """The files an artifact ships as its model (compiled packages, not the source weights beside them)."""
    from segopt_core.backends import ArtifactError, read_metadata

    try:
        names = read_metadata(folder).get("model_files") or []
    except ArtifactError:  # a plain folder, not a segopt artifact
        return []
    return [folder / name for name in names]


def _module_of(predictor: Predictor, model: nn.Module | None) -> nn.Module | None:
    """The nn.Module behind the predictor, when there is one."""
    if model is not None:
        return model
    candidate = getattr(predictor, "model", None)
    return candidate if isinstance(candidate, nn.Module) else None


def input_hw(shape: CellSpec | tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the model input: the cell's crop size or the given pair."""
    if isinstance(shape, CellSpec):
        return shape.crop_size
    h, w = (int(v) for v in shape)
    if h <= 0 or w <= 0:
        raise BenchmarkError(f"input size must be positive, got {shape!r}")
    return h, w


def _rounded(row: dict[str, Any], digits: int = 3) -> dict[str, Any]:
    """Floats rounded to `digits` decimals."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in row.items()}


def measure(fn: Callable[[], object], batch_size: int, device: str, timing: TimingConfig) -> dict[str, Any]:
    """First call, warm-up and timed loop of fn under a peak-memory probe: the timing and memory columns.

    The timed loop also records how busy the machine was; a suspect loop (contended, absurd spread) is
    measured again up to `timing.remeasure` times and the cleanest attempt is kept, still flagged if suspect.
    """
    sync = device_synchronizer(device)
    with PeakMemory(device) as memory:
        first = time_call(fn, sync)
        warmup_calls = warm_up(fn, timing, sync)
        attempts = [_timed_attempt(fn, batch_size, timing, sync)]
        while attempts[-1]["quality_flags"] and len(attempts) <= timing.remeasure:
            attempts.append(_timed_attempt(fn, batch_size, timing, sync))
    best = min(attempts, key=lambda a: (len(a["quality_flags"].split(",")) if a["quality_flags"] else 0,
                                        a["latency_ms_median"]))  # fmt: skip
    return {
        "first_call_ms": first * 1e3,
        "warmup_iters": warmup_calls,
        **best,
        "measure_attempts": len(attempts),
        "rss_before_mib": memory.rss_before_mib,
        "peak_rss_mib": memory.peak_rss_mib,
        "peak_rss_increase_mib": memory.peak_rss_increase_mib,
        "cuda_max_allocated_mib": memory.cuda_max_allocated_mib,
        "gpu_mem_used_peak_mib": memory.gpu_mem_used_peak_mib,
    }


def _timed_attempt(
    fn: Callable[[], object], batch_size: int, timing: TimingConfig, sync: Callable[[], None]
) -> dict[str, Any]:
    """One timed loop: latency statistics, the machine's load meanwhile, and the quality verdict."""
    with ContentionProbe() as probe:
        samples = timed_loop(fn, timing, sync)
    return timed_columns(samples, batch_size, probe)


def timed_columns(samples_s: list[float], batch_size: int, probe: ContentionProbe) -> dict[str, Any]:
    """The columns of a timed loop: latency statistics, the machine's load meanwhile, the quality verdict."""
    columns = {"iters": len(samples_s), **latency_stats(samples_s, batch_size), **probe.columns()}
    flags = quality_flags(columns)
    columns["quality"] = QUALITY_SUSPECT if flags else QUALITY_OK
    columns["quality_flags"] = ",".join(flags)
    return columns


def _free_device_memory(device: str) -> None:
    """Release cached allocations after an out-of-memory so the next variant starts clean."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _call_for(
    predictor: Predictor,
    shape: CellSpec | tuple[int, int],
    scope: str,
    images: Sequence[Path] | None,
    seed: int,
) -> tuple[Callable[[int], Callable[[], object]], tuple[int, int]]:
    """A factory batch_size -> zero-arg call for the scope, and the row's input (h, w)."""
    if scope == "model":
        h, w = input_hw(shape)

        def model_call(batch_size: int) -> Callable[[], object]:
            batch = np.random.default_rng(seed).standard_normal((batch_size, 3, h, w), dtype=np.float32)
            return lambda: predictor(batch)

        return model_call, (h, w)
    if not isinstance(shape, CellSpec):
        raise BenchmarkError("scope 'e2e' needs the cell (CellSpec) for preprocessing, not a shape")
    from segopt_core.benchmark.end_to_end import EndToEnd

    pipeline = EndToEnd(predictor, shape, list(images or []))
    return (lambda batch_size: lambda: pipeline(batch_size)), pipeline.image_size()


def base_row(
    variant: str,
    precision: str,
    device: str,
    scope: str,
    shape: CellSpec | tuple[int, int],
    batch_size: int,
    **fields: Any,
) -> dict[str, Any]:
    """A schema-complete row with the identifying columns and the machine fingerprint filled in."""
    row = empty_row()
    row.update(machine_fingerprint())
    row.update(status="ok", error="", variant=variant, precision=precision, device=device, scope=scope)
    row.update(cell=shape.name if isinstance(shape, CellSpec) else "", batch_size=batch_size)
    if scope == "model" or not isinstance(shape, CellSpec):
        row["input_h"], row["input_w"] = input_hw(shape)
    row.update(fields)
    return row


def benchmark_predictor(
    predictor: Predictor,
    shape: CellSpec | tuple[int, int],
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    warmup: int = 10,
    iters: int = 50,
    scope: str = "model",
    *,
    timing: TimingConfig | None = None,
    images: Sequence[str | Path] | None = None,
    model: nn.Module | None = None,
    model_path: str | Path | None = None,
    param_count: int | None = None,
    variant: str | None = None,
    checkpoint_sha256: str = "",
    load_ms: float | None = None,
    seed: int = 0,
    on_row: RowCallback | None = None,
) -> list[dict[str, Any]]:
    """Benchmark one predictor at each batch size: one flat rounded row each (docs/benchmark.md).

    `shape` is the cell (its crop size is the model input) or an (h, w) pair; `timing` overrides
    `warmup`/`iters` with time-based limits. Scope 'e2e' times image file -> full-size mask and needs a
    cell and `images`. An out-of-memory ends the sweep (status 'oom'; larger batches 'skipped'); any
    other exception gives a 'failed' row and the sweep goes on. `max_batch_ok` is the largest batch that ran.
    `on_row` sees each row as soon as its batch size is measured (for progress bars).
    """
    if scope not in SCOPES:
        raise BenchmarkError(f"scope {scope!r} is not one of {SCOPES}")
    timing = timing or TimingConfig(warmup_iters=warmup, iters=iters)
    sizes = check_batch_sizes(batch_sizes)
    static = static_columns(predictor, model, model_path, param_count)
    static |= {"checkpoint_sha256": checkpoint_sha256, "load_ms": load_ms}
    name = variant or predictor.name
    rows = []
    try:
        call_for, (h, w) = _call_for(predictor, shape, scope, [Path(p) for p in images or []], seed)
    except Exception as exc:  # e.g. undecodable e2e images: every batch size fails the same way
        call_for, (h, w), setup_error = None, input_hw(shape), exc
    oom_at = None
    for batch_size in sizes:
        row = base_row(name, predictor.precision, predictor.device, scope, shape, batch_size, **static)
        row.update(input_h=h, input_w=w)
        if call_for is None:
            row.update(status="failed", error=describe_error(setup_error))
        elif oom_at is not None:
            row.update(status="skipped", error=f"not run: batch size {oom_at} already ran out of memory")
        else:
            compiling = _first_use_seconds(predictor)
            oom_at = _measure_into(row, call_for, batch_size, predictor.device, timing)
            _keep_first_use_out(row, _first_use_seconds(predictor) - compiling)
        rows.append(row)
        _report(row, on_row)  # progress as each batch size ends; max_batch_ok is set once all have run
    return finish_rows(rows)


def static_columns(
    predictor: Predictor,
    model: nn.Module | None = None,
    model_path: str | Path | None = None,
    param_count: int | None = None,
) -> dict[str, Any]:
    """The columns that do not change with the batch size: model size on disk (or in memory), parameters."""
    module = _module_of(predictor, model)
    return {
        "model_size_mib": model_size_mib(module, model_path),
        "param_count": _first_known(param_count, _artifact_param_count(model_path), _param_count(module)),
    }


def _first_use_seconds(predictor: Predictor) -> float:
    """Seconds a predictor spent inside its calls compiling input sizes it had no code for (a torch-compile
    artifact's packages compiled on first use); 0 for every other predictor."""
    return float(getattr(predictor, "first_use_seconds", 0.0))


def _keep_first_use_out(row: dict[str, Any], seconds: float) -> None:
    """A size compiled on first use is a build step: say so in the row, and take its time (spent in the
    first call at the new size) out of first_call_ms."""
    row["compiled_on_first_use"] = seconds > 0
    if seconds > 0 and row.get("first_call_ms") is not None:
        row["first_call_ms"] = max(0.0, row["first_call_ms"] - seconds * 1e3)


def _first_known(*values: int | None) -> int | None:
    """The first value that is not None."""
    return next((v for v in values if v is not None), None)


def _artifact_param_count(path: str | Path | None) -> int | None:
    """Parameters of the network an artifact folder computes, from its metadata (also ONNX and engines)."""
    from segopt_core.backends import ArtifactError, read_metadata

    if path is None or not Path(path).is_dir():
        return None
    try:
        return read_metadata(path).get("param_count")
    except ArtifactError:  # a plain folder or file, not a segopt artifact
        return None


def _param_count(module: nn.Module | None) -> int | None:
    """Parameter count of the module, None without one."""
    from segopt_core.models import parameter_count

    return None if module is None else parameter_count(module)


def _measure_into(
    row: dict[str, Any],
    call_for: Callable[[int], Callable[[], object]],
    batch_size: int,
    device: str,
    timing: TimingConfig,
) -> int | None:
    """Fill row with the measurement (or its failure); returns batch_size when it ran out of memory."""
    try:
        row.update(measure(call_for(batch_size), batch_size, device, timing))
        return None
    except Exception as exc:  # failures are rows; the run goes on
        oom = is_out_of_memory(exc)
        row.update(status="oom" if oom else "failed", error=describe_error(exc))
        del exc
        if oom:
            _free_device_memory(device)
            return batch_size
        return None


def _report(row: dict[str, Any], on_row: RowCallback | None) -> None:
    """Pass a (rounded) copy of a measured row to the caller's progress callback."""
    if on_row is not None:
        on_row(_rounded(row))


def finish_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set max_batch_ok on every row, round and validate."""
    ok = [r["batch_size"] for r in rows if r["status"] == "ok"]
    finished = []
    for row in rows:
        row["max_batch_ok"] = max(ok) if ok else None
        row = _rounded(row)
        validate_row(row)
        finished.append(row)
    return finished


def status_rows(
    status: str,
    error: str,
    variant: str,
    shape: CellSpec | tuple[int, int],
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    *,
    precision: str = "",
    device: str = "cpu",
    scope: str = "model",
    checkpoint_sha256: str = "",
    on_row: RowCallback | None = None,
) -> list[dict[str, Any]]:
    """Rows for a variant that never ran ('skipped' backend or 'failed' build/load), one per batch size."""
    rows = [
        base_row(variant, precision, device, scope, shape, b, status=status, error=error,
                 checkpoint_sha256=checkpoint_sha256)
        for b in check_batch_sizes(batch_sizes)
    ]  # fmt: skip
    for row in rows:
        _report(row, on_row)
    return finish_rows(rows)

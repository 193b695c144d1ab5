"""The one measuring loop: a variant (or why it has none) timed against torch fp32 eager in the same rounds.

optimize-all and nightly-benchmark (`pipeline/stages.py`), `segopt benchmark` and `benchmarks/headline.py`
all measure through `measure_variant`: get the variant's artifact (skipped or failed rows when there is
none), load it, time it at each batch size, and time it with the torch fp32 reference (and any peers) in
alternating rounds, so a speedup divides two figures measured under the same load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from segopt_core.benchmark.contention import PAIR_CONTENDED, QUALITY_SUSPECT, ContentionProbe, quality_flags
from segopt_core.benchmark.engine import (
    DEFAULT_BATCH_SIZES,
    base_row,
    benchmark_predictor,
    describe_error,
    finish_rows,
    input_hw,
    is_out_of_memory,
    static_columns,
    status_rows,
    timed_columns,
)
from segopt_core.benchmark.timing import TimingConfig, device_synchronizer, interleaved_ab
from segopt_core.predictor import Predictor
from segopt_core.variants import CellSpec

log = logging.getLogger(__name__)
REFERENCE, VARIANT = "reference", "variant"  # the two sides of a pair in `Measurement.rounds_ms`
Shape = CellSpec | tuple[int, int]
RowCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Rounds:
    """Same-round timing: `warmup_iters` calls of each predictor, then `rounds` rounds of `iters_per_round`
    calls of each in turn, the order rotating every round (a burst of load hits every side)."""

    rounds: int = 5
    iters_per_round: int = 4
    warmup_iters: int = 3

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.iters_per_round < 1 or self.warmup_iters < 0:
            raise ValueError(
                f"rounds and calls per round must be >= 1 and warm-up >= 0, got {self.rounds}, "
                f"{self.iters_per_round}, {self.warmup_iters}"
            )

    @classmethod
    def spread(cls, timing: TimingConfig, rounds: int = 5) -> Rounds:
        """`timing`'s calls spread over `rounds` rounds (at least one call per round), with its warm-up."""
        return cls(rounds, max(1, -(-timing.iters // rounds)), timing.warmup_iters)


@dataclass(frozen=True)
class MeasureConfig:
    """How every variant of one run is measured.

    `timing` is each batch size's own loop (first call, warm-up, timed loop, memory); without it a row's
    latencies are the variant's samples from the rounds it shares with the reference. `rounds` is the pair
    with the torch fp32 reference (None: no pair), run at the smallest batch size that ran or, with
    `pair_every_batch_size`, at each. Only the `model` scope is paired (the reference takes tensors).
    """

    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    timing: TimingConfig | None = field(default_factory=TimingConfig)
    rounds: Rounds | None = field(default_factory=Rounds)
    pair_every_batch_size: bool = False
    scope: str = "model"
    threads: int | None = None  # intra-op threads of the loaded variant (torch / ONNX Runtime)

    def __post_init__(self) -> None:
        if self.timing is None and self.rounds is None:
            raise ValueError("nothing to measure: give a timing loop, same-round rounds, or both")


@dataclass(frozen=True)
class Candidate:
    """A variant to measure: its row labels and its artifact folder, or how to get it (a builder).

    A builder raising BackendUnavailable gives 'skipped' rows, any other exception 'failed' rows.
    """

    variant: str
    artifact: Callable[[], str | Path] | str  # a builder, or the folder (what crosses to another process)
    precision: str = ""
    device: str = "cpu"
    checkpoint_sha256: str = ""
    is_reference: bool = False  # the torch fp32 model itself: its own loop is its pair


@dataclass(frozen=True)
class Measurement:
    """One variant's benchmark rows and, per paired batch size, the same-round samples in ms by side
    (`reference`, `variant`, and each peer's name)."""

    rows: list[dict[str, Any]]
    rounds_ms: dict[int, dict[str, list[float]]] = field(default_factory=dict)


def measure_variant(
    candidate: Candidate,
    shape: Shape,
    config: MeasureConfig,
    reference: Callable[[], Predictor] | None = None,
    peers: Mapping[str, Predictor] | None = None,
    *,
    images: Sequence[str | Path] | None = None,
    on_row: RowCallback | None = None,
) -> Measurement:
    """Artifact, load, rows per batch size, and the same-round pair with `reference()` (and `peers`).

    A missing reference (None, or one that fails to load) leaves the pair columns empty; the rows stand.
    """
    ready = built(candidate, shape, config, on_row)
    if isinstance(ready, Measurement):
        return ready
    loaded = _load(ready, config.threads)
    if isinstance(loaded, NotRun):
        return _not_run(ready, shape, config, loaded, on_row)
    predictor, load_ms = loaded
    return measure_loaded(predictor, ready, shape, config, reference, peers, images=images, on_row=on_row,
                          load_ms=load_ms)  # fmt: skip


def measure_loaded(
    predictor: Predictor,
    candidate: Candidate,
    shape: Shape,
    config: MeasureConfig,
    reference: Callable[[], Predictor] | None = None,
    peers: Mapping[str, Predictor] | None = None,
    *,
    images: Sequence[str | Path] | None = None,
    on_row: RowCallback | None = None,
    load_ms: float | None = None,
) -> Measurement:
    """The rows and the same-round pair of a loaded predictor (the second half of `measure_variant`)."""
    folder = None if callable(candidate.artifact) else candidate.artifact
    fields = {"checkpoint_sha256": candidate.checkpoint_sha256, "load_ms": load_ms}
    if config.timing is None:
        fields |= static_columns(predictor, model_path=folder)
        ref = _reference(reference, candidate)
        return _rounds_only(predictor, candidate, shape, config, ref, peers, fields, on_row)
    rows = benchmark_predictor(predictor, shape, config.batch_sizes, scope=config.scope, timing=config.timing,
                               images=images, variant=candidate.variant, model_path=folder, on_row=on_row,
                               **fields)  # fmt: skip
    return _paired(predictor, candidate, shape, config, rows, reference, peers)


@dataclass(frozen=True)
class NotRun:
    """Why a variant has no measurement: 'skipped' (cannot run here), 'failed' or 'oom', and the error."""

    status: str
    error: str


def built(
    candidate: Candidate, shape: Shape, config: MeasureConfig, on_row: RowCallback | None = None
) -> Candidate | Measurement:
    """The candidate with its artifact folder (built here when `artifact` is a builder), or the skipped /
    failed rows of a build that raised."""
    from segopt_core.backends import BackendUnavailable

    if not callable(candidate.artifact):
        return candidate
    try:
        folder = candidate.artifact()
    except BackendUnavailable as exc:
        return _not_run(candidate, shape, config, NotRun("skipped", str(exc)), on_row)
    except Exception as exc:  # a variant that cannot be built is rows; the run goes on
        error = NotRun("failed", f"build failed: {describe_error(exc)}"[:500])
        return _not_run(candidate, shape, config, error, on_row)
    return replace(candidate, artifact=str(folder))


def _load(candidate: Candidate, threads: int | None) -> tuple[Predictor, float] | NotRun:
    """(predictor, load ms) of the candidate's artifact folder, or why it cannot be loaded."""
    from segopt_core.backends import BackendUnavailable, load_predictor

    start = time.perf_counter()
    try:
        predictor = load_predictor(candidate.artifact, num_threads=threads)
    except BackendUnavailable as exc:
        return NotRun("skipped", describe_error(exc))
    except Exception as exc:  # a crash in one variant is rows, not the end of the run
        return NotRun("oom" if is_out_of_memory(exc) else "failed", describe_error(exc))
    return predictor, (time.perf_counter() - start) * 1e3


def _not_run(
    candidate: Candidate, shape: Shape, config: MeasureConfig, why: NotRun, on_row: RowCallback | None
) -> Measurement:
    """One status row per batch size for a variant that never ran."""
    labels = {"precision": candidate.precision, "device": candidate.device, "scope": config.scope}
    labels |= {"checkpoint_sha256": candidate.checkpoint_sha256, "on_row": on_row}
    return Measurement(
        status_rows(why.status, why.error, candidate.variant, shape, config.batch_sizes, **labels)
    )


def _paired(
    predictor: Predictor,
    candidate: Candidate,
    shape: Shape,
    config: MeasureConfig,
    rows: list[dict[str, Any]],
    reference: Callable[[], Predictor] | None,
    peers: Mapping[str, Predictor] | None,
) -> Measurement:
    """The rows with the same-round pair (reference_latency_ms, paired_latency_ms) where it runs."""
    ok = [row for row in rows if row["status"] == "ok"]
    if config.rounds is None or config.scope != "model" or not ok:
        return Measurement(rows)
    paired = ok if config.pair_every_batch_size else ok[:1]
    if candidate.is_reference:  # torch fp32 itself: its own timed loop is the pair
        for row in paired:
            row["reference_latency_ms"] = row["paired_latency_ms"] = row["latency_ms_median"]
        return Measurement(rows)
    ref = _reference(reference, candidate)
    rounds_ms = {}
    for row in paired if ref is not None else []:
        sides = {REFERENCE: ref, VARIANT: predictor, **(peers or {})}
        try:
            samples, probe = _time_rounds(sides, row["batch_size"], shape, config.rounds, candidate.device)
        except Exception as exc:  # the row's own loop ran: only its same-round speedup is lost
            log.warning(
                "%s batch %s: same-round pair failed: %s",
                candidate.variant,
                row["batch_size"],
                describe_error(exc),
            )
            continue
        rounds_ms[row["batch_size"]] = samples
        row.update(_pair_columns(samples, probe, row))
    return Measurement(finish_rows(rows), rounds_ms)


def _rounds_only(
    predictor: Predictor,
    candidate: Candidate,
    shape: Shape,
    config: MeasureConfig,
    ref: Predictor | None,
    peers: Mapping[str, Predictor] | None,
    fields: dict[str, Any],
    on_row: RowCallback | None,
) -> Measurement:
    """Rows whose latencies are the variant's samples from the rounds it shares with the reference."""
    sides = {**({REFERENCE: ref} if ref is not None else {}), VARIANT: predictor, **(peers or {})}
    rows, rounds_ms, oom_at = [], {}, None
    for batch_size in sorted(set(config.batch_sizes)):
        row = base_row(
            candidate.variant,
            predictor.precision,
            predictor.device,
            config.scope,
            shape,
            batch_size,
            **fields,
        )
        if oom_at is not None:
            row.update(status="skipped", error=f"not run: batch size {oom_at} already ran out of memory")
        else:
            try:
                samples, probe = _time_rounds(sides, batch_size, shape, config.rounds, candidate.device)
            except Exception as exc:  # an out-of-memory or a crash at this batch size is its row
                row.update(status="oom" if is_out_of_memory(exc) else "failed", error=describe_error(exc))
                oom_at = batch_size if row["status"] == "oom" else None
            else:
                rounds_ms[batch_size] = samples
                row.update(_rounds_columns(samples, probe, row, config.rounds))
        rows.append(row)
        if on_row is not None:
            on_row(dict(row))
    return Measurement(finish_rows(rows), rounds_ms)


def _rounds_columns(
    samples: dict[str, list[float]], probe: ContentionProbe, row: dict[str, Any], rounds: Rounds
) -> dict[str, Any]:
    """A row's timing columns from its variant's same-round samples (and the pair, when there is one)."""
    columns = timed_columns([s / 1e3 for s in samples[VARIANT]], row["batch_size"], probe)
    columns |= {"warmup_iters": rounds.warmup_iters, "measure_attempts": 1}
    return columns | (_pair_columns(samples, probe, columns) if REFERENCE in samples else {})


def _reference(reference: Callable[[], Predictor] | None, candidate: Candidate) -> Predictor | None:
    """The reference predictor, or None (logged) when there is none or it fails to load."""
    if reference is None or candidate.is_reference:
        return None
    try:
        return reference()
    except Exception as exc:  # the speedup falls back to the separately measured reference
        log.warning(
            "%s: torch fp32 reference not loaded, no same-round speedup: %s",
            candidate.variant,
            describe_error(exc),
        )
        return None


def _time_rounds(
    sides: Mapping[str, Predictor], batch_size: int, shape: Shape, rounds: Rounds, device: str
) -> tuple[dict[str, list[float]], ContentionProbe]:
    """Same-round samples in ms by side on one fixed random batch, and how busy the machine was meanwhile."""
    h, w = input_hw(shape)
    batch = np.random.default_rng(0).standard_normal((batch_size, 3, h, w), dtype=np.float32)
    calls = {name: (lambda p=p: p(batch)) for name, p in sides.items()}
    with ContentionProbe() as probe:
        samples = interleaved_ab(
            calls, rounds.rounds, rounds.iters_per_round, rounds.warmup_iters, device_synchronizer(device)
        )
    return {name: [s * 1e3 for s in values] for name, values in samples.items()}, probe


def _pair_columns(
    samples_ms: dict[str, list[float]], probe: ContentionProbe, row: Mapping[str, Any]
) -> dict[str, Any]:
    """reference_latency_ms / paired_latency_ms, and the pair-contended flag when the rounds were busy."""
    columns: dict[str, Any] = {
        "reference_latency_ms": float(np.median(samples_ms[REFERENCE])),
        "paired_latency_ms": float(np.median(samples_ms[VARIANT])),
    }
    if "contended" in quality_flags({"other_cpu_cores": probe.other_cpu_cores}):  # the speedup is suspect too
        flags = ",".join(f for f in [row.get("quality_flags") or "", PAIR_CONTENDED] if f)
        columns |= {"quality": QUALITY_SUSPECT, "quality_flags": flags}
    return columns


def speedup_columns(bench: Mapping[str, Any], reference_throughput: float | None) -> dict[str, Any]:
    """Speedup vs torch fp32: from the same-round pair when measured, else from the two separate runs."""
    reference_ms, paired_ms = bench.get("reference_latency_ms"), bench.get("paired_latency_ms")
    if reference_ms and paired_ms:
        return {"speedup_vs_torch_fp32": round(reference_ms / paired_ms, 4), "speedup_basis": "same-round"}
    speed = bench.get("throughput_ips")
    if reference_throughput and speed:
        return {"speedup_vs_torch_fp32": round(speed / reference_throughput, 4), "speedup_basis": "separate"}
    return {}


def with_speedups(rows: Sequence[Mapping[str, Any]], reference_variant: str) -> list[dict[str, Any]]:
    """The rows with `speedup_vs_torch_fp32` / `speedup_basis` filled: same-round where the pair ran, else
    against the throughput of `reference_variant`'s own row at that batch size (same checkpoint)."""
    speed = {
        (r["checkpoint_sha256"], r["cell"], r["batch_size"]): r["throughput_ips"]
        for r in rows
        if r["variant"] == reference_variant and r["status"] == "ok"
    }
    return [
        {**r, **speedup_columns(r, speed.get((r["checkpoint_sha256"], r["cell"], r["batch_size"])))}
        if r["status"] == "ok"
        else dict(r)
        for r in rows
    ]

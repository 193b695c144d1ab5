"""`VariantRecord`: what travels with one checkpoint × variant from planning to the report.

One checkpoint's way through optimize-all, in typed objects:

    CheckpointRef (discovery) -> VariantJob (plan) -> VariantRecord.start(...) (status "planned")
      -> build      replace(record, status="ok", artifact=..., started_at=..., build_seconds=...)
      -> benchmark  replace(record, bench_rows=[...], benchmark_seconds=...)
      -> evaluate   replace(record, accuracy={...}, eval_seconds=..., finished_at=...)
      -> results.records_to_rows -> report rows

Stages never mutate a record: each returns `dataclasses.replace(record, ...)`. `to_dict()` is the JSON form
the result cache stores; `from_dict()` reads it back (also entries written before this class existed: their
keys are the same, missing ones take the defaults, unknown ones are ignored).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segopt_core.backends.options import VariantOptions
    from segopt_core.pipeline.jobs import CheckpointRef

STATUSES = ("planned", "ok", "skipped", "failed")


@dataclass(frozen=True)
class VariantRecord:
    """One variant of one checkpoint and what the stages found out about it."""

    # identity (set at planning)
    checkpoint: str  # path of the source checkpoint
    checkpoint_sha256: str
    cell: str  # e.g. "b0-512-ade20k"
    backend: str
    precision: str
    variant: str  # the variant's slug, e.g. "onnxruntime-int8-dynamic"
    options: dict[str, Any] = field(default_factory=dict)  # VariantOptions.to_dict()
    cache_key: str = ""  # the result-cache key ("" for nightly re-measurements)
    # outcome
    status: str = "planned"  # planned | ok | skipped (backend unavailable here) | failed
    error: str = ""
    artifact: str = ""  # the built artifact folder
    reused: bool = False  # taken from the result cache of an earlier run, not measured now
    bench_rows: list[dict[str, Any]] = field(default_factory=list)  # benchmark rows, one per batch size
    accuracy: dict[str, Any] | None = None  # eval_mode, eval_images, miou / pixel_agreement ... or error
    # timing (UTC ISO times, seconds)
    started_at: str | None = None
    build_seconds: float | None = None  # checkpoint load + build (or reuse check), the wait excluded
    build_wait_seconds: float | None = None  # waiting for the other builds (one torch build at a time)
    artifact_build_seconds: float | None = None  # the store's build (compile included); None when reused
    benchmark_seconds: float | None = None
    eval_seconds: float | None = None
    finished_at: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown record status {self.status!r}; valid: {', '.join(STATUSES)}")

    @classmethod
    def start(
        cls, checkpoint: CheckpointRef, options: VariantOptions, cache_key: str = "", **outcome: Any
    ) -> VariantRecord:
        """The record of a planned variant (the one place records are created); `outcome` sets e.g.
        status and artifact for an artifact that already exists."""
        return cls(
            checkpoint=checkpoint.path,
            checkpoint_sha256=checkpoint.sha256,
            cell=checkpoint.cell,
            backend=options.backend,
            precision=options.precision,
            variant=options.slug,
            options=json.loads(json.dumps(options.to_dict())),  # as the cache stores it (lists)
            cache_key=cache_key,
            **outcome,
        )

    @property
    def ok(self) -> bool:
        """True while no stage failed or skipped it (after the build: it has an artifact)."""
        return self.status == "ok"

    @property
    def device(self) -> str:
        """The device the variant runs on ("cpu" or "cuda")."""
        return self.options.get("device", "cpu")

    def failed(self, error: str) -> VariantRecord:
        """This record marked failed with the reason."""
        return dataclasses.replace(self, status="failed", error=error)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the result cache's `record`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantRecord:
        """Inverse of `to_dict`; missing keys take the defaults, unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["bench_rows"] = list(values.get("bench_rows") or [])
        values["options"] = dict(values.get("options") or {})
        return cls(**values)

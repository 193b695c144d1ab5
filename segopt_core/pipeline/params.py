"""The parameters of optimize-all and nightly-benchmark, with their defaults in one place.

The CLI builds these objects from its flags, the flows take their signature defaults from them (Prefect
deployments keep passing plain JSON-able arguments) and build them from their arguments, and prefect.yaml
names only the parameters whose value differs from these defaults (a test validates them against these
models).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_BATCH_SIZES = (1, 4, 8)


class BenchmarkParams(BaseModel):
    """What every benchmarking flow takes: which stored/built variants, how to measure, where to write."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cells: list[str] | None = None  # cell-name patterns, e.g. ["b0", "cityscapes"]
    variants: list[str] | None = None  # exact variant slugs, e.g. ["onnxruntime-fp32"]
    batch_sizes: list[int] = Field(default_factory=lambda: list(DEFAULT_BATCH_SIZES))
    warmup: int = 3  # untimed calls per batch size (first-call allocations, ORT/compile warm-up)
    iters: int = 20  # timed calls per batch size: enough for a stable median on a busy 2-core CI box
    work_dir: str | None = None  # None: SegoptSettings.work_dir
    report_dir: str | None = None  # None: SegoptSettings.reports_dir
    track: bool = True  # log to MLflow (False: untracked, said in summary.md and on the console)

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _default_batch_sizes(cls, value: Any) -> Any:
        return list(DEFAULT_BATCH_SIZES) if not value else value  # a flow called with None / []


class OptimizeAllParams(BenchmarkParams):
    """Parameters of `optimize-all` (docs/orchestration.md describes each)."""

    paths: list[str] | None = None  # None: the B0 `segopt demo` trained, else <work_dir>/zoo
    backends: list[str] | None = None
    precisions: list[str] | None = None
    data_dir: str | None = None  # labelled validation set; None: agreement with fp32 on synthetic samples
    limit: int | None = 8  # evaluation images per variant (None: all)
    min_miou_ratio: float = 0.97  # the accuracy gate: a variant keeps >= 97 % of the fp32 mIoU
    demo_zoo_if_empty: bool = False
    log_models: bool = False

    def cache_settings(self) -> dict[str, Any]:
        """The measurement settings a cached result is only valid for (part of its cache key)."""
        return self.model_dump(include={"batch_sizes", "warmup", "iters", "data_dir", "limit"})


class NightlyParams(BenchmarkParams):
    """Parameters of `nightly-benchmark`."""

    window: int = 5  # previous runs the baseline median is taken over
    threshold: float = 0.10  # a latency increase above 10 % of the baseline is a regression
    fail_on_regression: bool = False


OPTIMIZE_ALL_DEFAULTS = OptimizeAllParams()
NIGHTLY_DEFAULTS = NightlyParams()

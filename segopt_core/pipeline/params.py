"""Every parameter of segopt's flows, with its default, range and description, in one place.

The CLI builds these objects from its flags (`from_cli`); the flows build them first thing from their
arguments (`from_flow`: a deployment run passes plain JSON, with no CLI in between), and both call
`check_inputs` (flows/parameters.preflight) before any work starts. A bad value is an `OptionError`: one
line naming the option, the value and the valid range. The flows' signatures take their defaults from
these models, and Prefect's run form shows the fields' descriptions (flows/parameters.described_by).
prefect.yaml names only the parameters whose value differs from these defaults (a test validates them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from segopt_core.atomic import check_target_path
from segopt_core.backends.options import BACKENDS, PRECISIONS, VariantOptions
from segopt_core.batches import DEFAULT_BATCH_SIZES, check_batch_sizes
from segopt_core.errors import OptionError
from segopt_core.pipeline.gate import DEFAULT_MIN_MIOU_RATIO, AccuracyGate
from segopt_core.pipeline.selection import check_cell_patterns, check_names, known_slugs, select_options


class FlowParams(BaseModel):
    """The parameters of one flow: frozen, unknown names refused, every value checked on construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    FLAGS: ClassVar[dict[str, str]] = {}  # field -> its CLI spelling where that is not --field-name
    _cli: bool = PrivateAttr(False)  # built from a command line: messages name flags

    @classmethod
    def from_cli(cls, **values: Any) -> Self:
        """The parameters of a command line; OptionError names the option as a flag (--min-miou-ratio)."""
        return cls._build(values, cli=True)

    @classmethod
    def from_flow(cls, **values: Any) -> Self:
        """The parameters of a flow call; OptionError names the option as a parameter (min_miou_ratio)."""
        return cls._build(values, cli=False)

    @classmethod
    def option_name(cls, field: str, cli: bool) -> str:
        """How the user spelled an option: its flag on the command line, its name in a flow call."""
        return cls.FLAGS.get(field, "--" + field.replace("_", "-")) if cli else field

    @classmethod
    def _build(cls, values: dict[str, Any], cli: bool) -> Self:
        try:
            params = cls(**values)
        except ValidationError as exc:
            raise OptionError(cls._one_line(exc.errors()[0], cli)) from None
        params._cli = cli
        return params

    def named(self, field: str) -> str:
        """The option as the user spelled it (see option_name)."""
        return self.option_name(field, self._cli)

    @classmethod
    def _one_line(cls, error: dict[str, Any], cli: bool) -> str:
        """One line for pydantic's first error: the option, the value, what is wrong."""
        field = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            valid = ", ".join(cls.option_name(name, cli) for name in cls.model_fields)
            return f"unknown parameter {field!r}; valid: {valid}"
        name = cls.option_name(field, cli) if field in cls.model_fields else field
        if error["type"] == "value_error":  # one of the validators below: its message names the value
            return f"{name}: {error['ctx']['error']}"
        message = error["msg"][0].lower() + error["msg"][1:]
        return f"{name} {error['input']!r}: {message}"

    def check_inputs(self) -> None:
        """Check the files and folders the parameters name (subclasses); OptionError / DatasetError."""


def _as_list(value: Any) -> Any:
    """None (a flow called without the parameter, or JSON null) means the empty list."""
    return [] if value is None else value


def _folder(value: str | None) -> str | None:
    """A folder path that can be created here ('' is None: the settings' default)."""
    if value:
        check_target_path(value, folder=True)
    return value or None


def _default_batch_sizes(value: Any) -> Any:
    """None or [] (a flow called without them) means the default sweep."""
    return list(DEFAULT_BATCH_SIZES) if not value else value


class BenchmarkParams(FlowParams):
    """What every benchmarking flow takes: which stored or built variants, how to measure, where to write."""

    cells: list[str] = Field(
        default_factory=list,
        description='Cell-name patterns to keep, e.g. ["b0", "cityscapes"]; empty: every cell.',
    )
    variants: list[str] = Field(
        default_factory=list,
        description='Exact variant names, e.g. ["torch-fp32", "onnxruntime-fp32"]; empty: every variant '
        "(optimize-all: this machine's default set, torch fp32 first).",
    )
    batch_sizes: list[int] = Field(
        default_factory=lambda: list(DEFAULT_BATCH_SIZES),
        description="Batch sizes to benchmark, each 1 to 1024.",
    )
    warmup: int = Field(
        3, ge=0, le=10_000, description="Untimed calls per batch size before timing (first-call set-up)."
    )
    iters: int = Field(
        20,
        ge=1,
        le=100_000,
        description="Timed calls per batch size (enough for a stable median on a busy 2-core machine).",
    )
    work_dir: str | None = Field(
        None, description="Artifacts and the result cache; empty: SEGOPT_WORK_DIR, else segopt-work."
    )
    report_dir: str | None = Field(
        None, description="Reports and their history; empty: SEGOPT_REPORTS_DIR, else reports."
    )
    track: bool = Field(
        True, description="Log to MLflow; false: untracked, which summary.md and the console say."
    )

    _lists = field_validator("cells", "variants", mode="before")(_as_list)
    _folders = field_validator("work_dir", "report_dir")(_folder)
    _sizes_default = field_validator("batch_sizes", mode="before")(_default_batch_sizes)
    _sizes = field_validator("batch_sizes")(check_batch_sizes)

    @field_validator("cells")
    @classmethod
    def _check_cells(cls, value: list[str]) -> list[str]:
        check_cell_patterns(value)
        return value

    def work(self) -> Path:
        """The work folder (the parameter, else the settings')."""
        from segopt_core.settings import load_settings

        return Path(self.work_dir) if self.work_dir else load_settings().work_dir


class OptimizeAllParams(BenchmarkParams):
    """Parameters of `optimize-all` (docs/orchestration.md describes each)."""

    FLAGS: ClassVar[dict[str, str]] = {
        "paths": "PATHS",
        "data_dir": "--data",
        "demo_zoo_if_empty": "--demo-zoo",
    }

    paths: list[str] = Field(
        default_factory=list,
        description="Checkpoint files or folders, searched recursively; empty: the B0 `segopt demo` "
        "trained, else <work_dir>/zoo.",
    )
    backends: list[str] = Field(
        default_factory=list,
        description=f"Keep only these backends of the machine's default set ({', '.join(BACKENDS)}); "
        "empty: all.",
    )
    precisions: list[str] = Field(
        default_factory=list,
        description=f"Keep only these precisions ({', '.join(PRECISIONS)}); empty: all.",
    )
    data_dir: str | None = Field(
        None,
        description="Labelled validation set (ADE20K, Cityscapes or images/ + masks/); empty: label-free "
        "agreement with fp32 on synthetic samples.",
    )
    limit: int | None = Field(8, ge=1, description="Evaluation images per variant; empty: all.")
    min_miou_ratio: float = Field(
        DEFAULT_MIN_MIOU_RATIO,
        description="The accuracy gate: a variant is accepted when it keeps this share of the fp32 mIoU "
        "(0 < gate <= 1).",
    )
    demo_zoo_if_empty: bool = Field(
        False, description="Write the tiny demo zoo into the first path when the paths hold nothing."
    )
    log_models: bool = Field(False, description="Also upload each variant's model files to MLflow.")

    _more_lists = field_validator("paths", "backends", "precisions", mode="before")(_as_list)

    @field_validator("backends")
    @classmethod
    def _check_backends(cls, value: list[str]) -> list[str]:
        check_names("backend", value, BACKENDS)
        return value

    @field_validator("precisions")
    @classmethod
    def _check_precisions(cls, value: list[str]) -> list[str]:
        check_names("precision", value, PRECISIONS)
        return value

    @field_validator("variants")
    @classmethod
    def _check_variants(cls, value: list[str]) -> list[str]:
        check_names("variant", value, known_slugs())
        return value

    @field_validator("min_miou_ratio")
    @classmethod
    def _check_gate(cls, value: float) -> float:
        return AccuracyGate(value).min_miou_ratio

    @field_validator("data_dir")
    @classmethod
    def _check_data_path(cls, value: str | None) -> str | None:
        return value or None

    def cache_settings(self) -> dict[str, Any]:
        """The measurement settings a cached result is only valid for (part of its cache key)."""
        return self.model_dump(include={"batch_sizes", "warmup", "iters", "data_dir", "limit"})

    def variant_options(self, cuda: bool = False) -> list[VariantOptions]:
        """The variants to build on this machine (OptionError when the filters select none)."""
        return select_options(self.backends, self.precisions, self.variants, cuda)

    def check_inputs(self) -> None:
        """The paths hold a checkpoint, the validation set reads, the filters select a variant here."""
        from segopt_core.pipeline.demo_zoo import default_sources, is_empty
        from segopt_core.pipeline.discovery import check_sources
        from segopt_core.pipeline.stages import check_data

        paths = self.paths or default_sources(self.work())[0]
        if not (self.demo_zoo_if_empty and is_empty(paths)):
            check_sources(paths, self.named("paths") if self.paths else "default source")
        if self.data_dir is not None:
            check_data(self.data_dir, self.limit)
        import torch  # last: the one slow import of the checks (a second or two)

        self.variant_options(torch.cuda.is_available())


class NightlyParams(BenchmarkParams):
    """Parameters of `nightly-benchmark`."""

    window: int = Field(
        5,
        ge=1,
        le=1000,
        description="Previous runs (same cell, checkpoint, variant, batch size, machine) the baseline "
        "median is taken over.",
    )
    threshold: float = Field(
        0.10,
        gt=0,
        le=10,
        description="A median latency this share above the baseline (0.10 = 10 %) is a regression.",
    )
    fail_on_regression: bool = Field(False, description="End the run as failed when a row regressed.")

    def check_inputs(self) -> None:
        """The work folder holds optimize-all's artifact store; every variant name is known or stored."""
        store = self.work() / "artifacts"
        if not store.is_dir():
            raise OptionError(
                f"{self.named('work_dir')} {self.work()}: no artifact store there ({store} "
                "does not exist); run optimize-all first, or point it at optimize-all's work folder"
            )
        if self.variants:
            from segopt_core.backends import ArtifactStore

            stored = {artifact.metadata["slug"] for artifact in ArtifactStore(store).artifacts()}
            check_names("variant", self.variants, sorted({*known_slugs(), *stored}))


class DemoParams(FlowParams):
    """Parameters of `segopt demo` (the flow `demo`)."""

    work_dir: str | None = Field(None, description="Data, checkpoints and artifacts; empty: segopt-work.")
    report_dir: str | None = Field(None, description="Where reports/<run-id>/ goes; empty: reports.")
    n_train: int = Field(240, ge=2, le=100_000, description="Synthetic training images.")
    n_val: int = Field(40, ge=1, le=100_000, description="Synthetic validation images.")
    image_size: int = Field(
        128, ge=64, le=2048, description="Synthetic image size and training crop (pixels)."
    )
    train_iters: int = Field(400, ge=10, le=1_000_000, description="Training iterations of the demo B0.")
    batch_sizes: list[int] = Field(
        default_factory=lambda: list(DEFAULT_BATCH_SIZES), description="Benchmark batch sizes."
    )
    video_frames: int = Field(48, ge=2, le=100_000, description="Frames of the synthetic 720p clip.")
    alpha: float = Field(0.6, ge=0, lt=1, description="Temporal smoothing of the video step (0: off).")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the data, the training and the clip.")

    _folders = field_validator("work_dir", "report_dir")(_folder)
    _sizes_default = field_validator("batch_sizes", mode="before")(_default_batch_sizes)
    _sizes = field_validator("batch_sizes")(check_batch_sizes)


OPTIMIZE_ALL_DEFAULTS = OptimizeAllParams()
NIGHTLY_DEFAULTS = NightlyParams()
DEMO_DEFAULTS = DemoParams()

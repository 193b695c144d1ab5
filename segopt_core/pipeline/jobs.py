"""What optimize-all works on: matched checkpoints and one job per checkpoint × variant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segopt_core.backends.options import VariantOptions
from segopt_core.pipeline.cache import cache_key
from segopt_core.pipeline.record import VariantRecord
from segopt_core.variants import CellSpec


@dataclass(frozen=True)
class CheckpointRef:
    """A discovered checkpoint matched to its cell."""

    path: str
    spec: CellSpec
    sha256: str
    format: str = ""
    conflicts: tuple[str, ...] = ()  # name/config said otherwise than the weights (CellMatch.conflicts)

    @property
    def cell(self) -> str:
        """The cell name, e.g. 'b0-512-ade20k'."""
        return self.spec.name


@dataclass(frozen=True)
class VariantJob:
    """One checkpoint × variant to build, benchmark and evaluate; `key` names its cached result."""

    checkpoint: CheckpointRef
    options: VariantOptions
    key: str
    settings: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def variant(self) -> str:
        """The variant's slug."""
        return self.options.slug

    def record(
        self, status: str = "planned", error: str = "", artifact: str = "", **extra: Any
    ) -> VariantRecord:
        """This job's record (the unit the stages pass on and the result cache stores)."""
        return VariantRecord.start(
            self.checkpoint, self.options, self.key, status=status, error=error, artifact=artifact, **extra
        )


def plan_jobs(
    checkpoints: Sequence[CheckpointRef], options: Sequence[VariantOptions], settings: Mapping[str, Any]
) -> list[VariantJob]:
    """Every checkpoint × option pair, keyed by checkpoint content + options + measurement settings."""
    return [
        VariantJob(ckpt, opt, cache_key(ckpt.sha256, opt.to_dict(), settings), settings)
        for ckpt in checkpoints
        for opt in options
    ]

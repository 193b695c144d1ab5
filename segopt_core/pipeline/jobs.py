"""What optimize-all works on: matched checkpoints, the variant options to build, and one job per pair."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segopt_core.backends.options import SUPPORTED, VariantOptions, default_variants
from segopt_core.pipeline.cache import cache_key
from segopt_core.variants import VariantSpec

REFERENCE_VARIANT = VariantOptions("torch", "fp32")  # the eager fp32 model every variant is compared with


@dataclass(frozen=True)
class CheckpointRef:
    """A discovered checkpoint matched to its cell."""

    path: str
    spec: VariantSpec
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

    def record(self, status: str, error: str = "", artifact: str = "", **extra: Any) -> dict[str, Any]:
        """A JSON-able record of this job's outcome (the unit the result cache stores)."""
        return {
            "checkpoint": self.checkpoint.path,
            "checkpoint_sha256": self.checkpoint.sha256,
            "cell": self.checkpoint.cell,
            "backend": self.options.backend,
            "precision": self.options.precision,
            "variant": self.variant,
            "options": self.options.to_dict(),
            "cache_key": self.key,
            "artifact": artifact,
            "status": status,
            "error": error,
            **extra,
        }


def select_options(
    backends: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    cuda: bool = False,
) -> list[VariantOptions]:
    """The default variants of this machine filtered by backend/precision/slug, torch fp32 always first.

    A (backend, precision) pair named explicitly in both filters but absent from the defaults is added
    with default options when the backend implements it (e.g. tensorrt on a CPU machine -> a skipped row).
    A slug in `variants` may name any known variant, also one this machine does not build by default
    (e.g. torch-compile-int8-static-folded without VNNI).
    """
    chosen = [
        o
        for o in default_variants(cuda)
        if (not backends or o.backend in backends) and (not precisions or o.precision in precisions)
    ]
    if backends and precisions:
        covered = {(o.backend, o.precision) for o in chosen}
        for backend in backends:
            for precision in precisions:
                if (backend, precision) not in covered and precision in SUPPORTED.get(backend, ()):
                    chosen.append(VariantOptions(backend, precision))
    unknown = sorted(set(backends or ()) - set(SUPPORTED))
    if unknown:
        raise ValueError(f"unknown backends {unknown}; valid: {', '.join(SUPPORTED)}")
    if variants:
        known = {o.slug: o for o in [*chosen, *default_variants(cuda=True, bf16=True, pt2e=True)]}
        missing = sorted(set(variants) - set(known))
        if missing:
            raise ValueError(f"unknown variants {missing}; known: {', '.join(sorted(known))}")
        chosen = [known[slug] for slug in dict.fromkeys(variants)]
    return [REFERENCE_VARIANT, *(o for o in chosen if o != REFERENCE_VARIANT)]


def plan_jobs(
    checkpoints: Sequence[CheckpointRef], options: Sequence[VariantOptions], settings: Mapping[str, Any]
) -> list[VariantJob]:
    """Every checkpoint × option pair, keyed by checkpoint content + options + measurement settings."""
    return [
        VariantJob(ckpt, opt, cache_key(ckpt.sha256, opt.to_dict(), settings), settings)
        for ckpt in checkpoints
        for opt in options
    ]


def matches(cell: str, patterns: Sequence[str] | None) -> bool:
    """True when no patterns are given or the cell name contains one of them."""
    return not patterns or any(p.lower() in cell.lower() for p in patterns)


def find_checkpoints(
    paths: Sequence[str | Path], cells: Sequence[str] | None = None
) -> tuple[list[CheckpointRef], list[dict[str, str]]]:
    """Accepted checkpoints under paths whose cell matches `cells`, and the rejected ones with reasons."""
    from segopt_core.checkpoints import discover

    report = discover([Path(p) for p in paths])
    accepted = [
        CheckpointRef(str(e.path), e.match.spec, e.sha256, e.format, e.match.conflicts)
        for e in report.accepted
        if matches(e.cell, cells)
    ]
    rejected = [{"path": str(r.path), "reason": str(r.reason)} for r in report.rejected]
    return accepted, rejected


def is_empty(paths: Sequence[str | Path]) -> bool:
    """True when none of the paths exists or holds any file."""
    try:
        return not any(Path(p).is_file() or (Path(p).is_dir() and any(Path(p).iterdir())) for p in paths)
    except OSError:  # e.g. permission denied: not known to be empty; discovery reports the folder
        return False


def ensure_demo_zoo(folder: str | Path) -> bool:
    """Write the tiny demo zoo (`segopt zoo init DIR --tiny`) into an empty folder; True when written."""
    from segopt_core.checkpoints import init_zoo

    if not is_empty([folder]):
        return False
    init_zoo(Path(folder), tiny=True)
    return True

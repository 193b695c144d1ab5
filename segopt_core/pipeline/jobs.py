"""What optimize-all works on: matched checkpoints, the variant options to build, and one job per pair."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segopt_core.backends.options import (
    BACKENDS,
    PRECISIONS,
    REFERENCE_VARIANT,
    VariantOptions,
    default_variants,
)
from segopt_core.backends.registry import get_backend
from segopt_core.errors import OptionError
from segopt_core.pipeline.cache import cache_key
from segopt_core.pipeline.record import VariantRecord
from segopt_core.variants import CELLS, DATASETS, ENCODERS, CellSpec


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


def check_names(what: str, given: Iterable[str] | None, valid: Iterable[str]) -> None:
    """OptionError naming the first unknown value, a close match and every valid one (one line)."""
    valid = list(valid)
    for name in given or ():
        if name not in valid:
            close = [v for v in valid if v.startswith(name)][:3] or difflib.get_close_matches(
                name, valid, 2, 0.7
            )
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise OptionError(f"unknown {what} {name!r}{hint}; valid: {', '.join(valid)}")


# words a cell name is made of: encoder, resolution, dataset, then e.g. "150cls" / "custom" for custom cells
_CELL_WORDS = {*ENCODERS, *DATASETS, "tiny", "custom"}


def check_cell_patterns(patterns: Iterable[str] | None) -> None:
    """OptionError for a --cells pattern that no cell name can contain (e.g. 'b9-999-mars')."""
    for pattern in patterns or ():
        words = pattern.lower().split("-")
        if any(pattern.lower() in name for name in CELLS):
            continue
        if all(w in _CELL_WORDS or re.fullmatch(r"\d+(cls)?", w) for w in words):
            continue  # a custom cell's name, e.g. b0-128-ade20k or tiny-64-ade20k
        raise OptionError(
            f"unknown cell pattern {pattern!r}; valid: (parts of) cell names made of an encoder "
            f"({', '.join(ENCODERS)}, tiny), a resolution and a dataset ({', '.join(DATASETS)}), "
            f"e.g. {', '.join(CELLS)}"
        )


def check_batch_sizes(batch_sizes: Iterable[int] | None) -> None:
    """OptionError unless every batch size is a positive integer."""
    bad = [b for b in batch_sizes or () if isinstance(b, bool) or not isinstance(b, int) or b < 1]
    if bad:
        raise OptionError(f"batch sizes must be positive integers, e.g. 1,4,8; got {bad[0]!r}")


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
    (e.g. torch-compile-int8-static-folded without VNNI). Unknown names, and filters that select nothing,
    raise OptionError listing the valid values.
    """
    check_names("backend", backends, BACKENDS)
    check_names("precision", precisions, PRECISIONS)
    defaults = default_variants(cuda)
    chosen = [
        o
        for o in defaults
        if (not backends or o.backend in backends) and (not precisions or o.precision in precisions)
    ]
    if backends and precisions:
        covered = {(o.backend, o.precision) for o in chosen}
        for backend in backends:
            for precision in precisions:
                if (backend, precision) not in covered and precision in get_backend(backend).precisions:
                    chosen.append(VariantOptions(backend, precision))
    if variants:
        known = {o.slug: o for o in [*chosen, *default_variants(cuda=True, bf16=True, pt2e=True)]}
        check_names("variant", variants, sorted(known))
        chosen = [known[slug] for slug in dict.fromkeys(variants)]
    elif (backends or precisions) and not chosen:
        filters = {"--backends": backends, "--precisions": precisions}
        asked = " ".join(f"{flag} {','.join(v)}" for flag, v in filters.items() if v)
        here = ", ".join(o.slug for o in defaults)
        raise OptionError(
            f"no variant matches {asked} on this machine; its variants: {here} "
            "(name a backend and a precision together to add another pair)"
        )
    return [REFERENCE_VARIANT, *(o for o in chosen if o != REFERENCE_VARIANT)]


def known_slugs() -> list[str]:
    """Every variant name select_options accepts on any machine (CUDA, bf16 and PT2E variants included)."""
    return sorted(o.slug for o in default_variants(cuda=True, bf16=True, pt2e=True))


def check_run_options(
    cells: Sequence[str] | None,
    backends: Sequence[str] | None,
    precisions: Sequence[str] | None,
    variants: Sequence[str] | None,
    batch_sizes: Sequence[int],
    cuda: bool = False,
) -> list[VariantOptions]:
    """Every optimize-all option checked before anything is built (OptionError); the variants to build."""
    check_cell_patterns(cells)
    check_batch_sizes(batch_sizes)
    return select_options(backends, precisions, variants, cuda)


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


def demo_model(work_dir: str | Path) -> Path | None:
    """The B0 that `segopt demo` trained under work_dir (its best export, else latest); None when absent."""
    for out in sorted((Path(work_dir) / "checkpoints").glob("b0-demo-*"), reverse=True):
        for export in ("best", "latest"):
            if (out / export / "config.json").is_file():
                return out / export
    return None


def default_sources(work_dir: str | Path) -> tuple[list[str], str | None]:
    """(paths, data_dir) for optimize-all without paths: the demo's trained B0 and its synthetic labelled
    set when `segopt demo` ran (a real model: its variants' accuracy means something), else the zoo."""
    model = demo_model(work_dir)
    if model is None:
        return [str(Path(work_dir) / "zoo")], None
    data = Path(work_dir) / "data" / "synth-ade20k"
    return [str(model)], str(data) if data.is_dir() else None

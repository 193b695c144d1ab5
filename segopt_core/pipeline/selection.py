"""Which cells and variants a run means: names checked against the valid ones, the machine's variant set
filtered by backend, precision and slug."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

from segopt_core.backends.options import (
    BACKENDS,
    PRECISIONS,
    REFERENCE_VARIANT,
    VariantOptions,
    default_variants,
)
from segopt_core.backends.registry import get_backend
from segopt_core.errors import OptionError
from segopt_core.variants import CELLS, DATASETS, ENCODERS


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


def matches(cell: str, patterns: Sequence[str] | None) -> bool:
    """True when no patterns are given or the cell name contains one of them."""
    return not patterns or any(p.lower() in cell.lower() for p in patterns)


def known_slugs() -> list[str]:
    """Every variant name select_options accepts on any machine (CUDA, bf16 and PT2E variants included)."""
    return sorted(o.slug for o in default_variants(cuda=True, bf16=True, pt2e=True))


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

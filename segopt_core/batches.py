"""Batch sizes: the default sweep and the one rule commands, flows and the benchmark API check them by."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

from segopt_core.errors import OptionError

DEFAULT_BATCH_SIZES = (1, 4, 8)
# Far above what a segmentation model is served with; a larger value is a typo (1024 images of 512x512
# are 3 GiB of input alone) that would otherwise end in an allocation failure minutes into a run.
MAX_BATCH_SIZE = 1024


def check_batch_sizes(batch_sizes: Iterable[int] | None) -> list[int]:
    """The sorted unique batch sizes; OptionError unless there is one and each is an integer in 1..1024."""
    sizes = list(batch_sizes or ())
    bad = [b for b in sizes if not _is_int(b) or not 1 <= b <= MAX_BATCH_SIZE]
    if bad or not sizes:
        got = f"got {bad[0]!r}" if bad else "got none"
        raise OptionError(f"batch sizes must be integers from 1 to {MAX_BATCH_SIZE}, e.g. 1,4,8; {got}")
    return sorted({int(b) for b in sizes})


def _is_int(value: object) -> bool:
    """An integer (numpy's too), not a bool or a float."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)

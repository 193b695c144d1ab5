"""How figures are written for people (summary.md, MLflow descriptions, the Prefect log): one place.

Full precision stays in Parquet and in MLflow metrics; these only decide what a reader sees.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

DASH = "–"  # not measured / not applicable


def missing(value: Any) -> bool:
    """True for None, pd.NA and NaN."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def significant(value: Any, digits: int = 3) -> str:
    """`digits` significant digits without needless decimals: 3.13, 41.8, 305, 12040."""
    if missing(value):
        return DASH
    value = float(value)
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def fixed(value: Any, decimals: int) -> str:
    """A fixed number of decimals (ratios 4, speedups 2, cores 2, MiB of RSS 0)."""
    return DASH if missing(value) else f"{float(value):.{decimals}f}"


def ratio(value: Any) -> str:
    """An accuracy ratio to fp32 (the accuracy gate's unit): 1.0000, 0.9712."""
    return fixed(value, 4)


def speedup(value: Any) -> str:
    """3.62×, 22.6×, 1265× (two decimals below 10, else 3 significant digits)."""
    if missing(value):
        return DASH
    return f"{float(value):.2f}×" if abs(float(value)) < 10 else f"{significant(value)}×"

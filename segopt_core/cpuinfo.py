"""The CPU model name and ISA flags from /proc/cpuinfo, read in one place (benchmark rows, variant choice)."""

from __future__ import annotations

import platform
from pathlib import Path


def read_cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    """CPU model name and flag set of the first CPU in /proc/cpuinfo (platform fallback off Linux)."""
    model, flags = "", set()
    try:
        text = path.read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model or platform.processor(), flags


def cpu_has_any(*flags: str) -> bool:
    """True when the CPU reports any of the ISA flags (False where /proc/cpuinfo cannot be read)."""
    return not read_cpuinfo()[1].isdisjoint(flags)

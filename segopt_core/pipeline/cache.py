"""The result cache behind resume: finished variants' rows as one JSON file per cache key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segopt_core.atomic import write_json_atomic

# Kept only for reports/plots.py, which still imports it from here (reports -> pipeline is the one import
# cycle left, allowed in tests/test_layering.py); new code imports segopt_core.atomic.
__all__ = ["ResultCache", "cache_key"]


def cache_key(checkpoint_sha256: str, options: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """Stable key of one variant's results: checkpoint content + build options + measurement settings."""
    payload = json.dumps(
        {"sha256": checkpoint_sha256, "options": options, "settings": settings}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


class ResultCache:
    """Completed variants' records under `root/<key>.json`; a hit needs its artifact to still exist."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """File holding the rows of one key."""
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached record of a key, or None when missing, unreadable or its artifact is gone."""
        try:
            entry = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        artifact = entry.get("artifact") or ""
        if not artifact or not Path(artifact).exists():
            return None
        return entry["record"]

    def put(self, key: str, artifact: str | Path, record: Mapping[str, Any]) -> Path:
        """Store the record of a completed variant (atomic)."""
        return write_json_atomic(self.path(key), {"key": key, "artifact": str(artifact), "record": record})

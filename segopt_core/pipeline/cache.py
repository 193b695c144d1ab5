"""The result cache behind resume: finished variants' rows as one JSON file per cache key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segopt_core.atomic import write_json_atomic
from segopt_core.pipeline.record import VariantRecord

__all__ = ["ResultCache", "cache_key"]


def cache_key(checkpoint_sha256: str, options: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """Stable key of one variant's results: checkpoint content + build options + measurement settings."""
    payload = json.dumps(
        {"sha256": checkpoint_sha256, "options": options, "settings": settings}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


class ResultCache:
    """Completed variants' records under `root/<key>.json`; a hit needs its artifact to still exist.

    A stage (e.g. "benchmark") stores a variant's record as soon as that stage finished, under
    `root/<key>.<stage>.json`, so a run killed later redoes only the stages that had not finished.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str, stage: str | None = None) -> Path:
        """File holding the record of one key (of one finished stage when `stage` is given)."""
        return self.root / (f"{key}.json" if stage is None else f"{key}.{stage}.json")

    def get(
        self, key: str, stage: str | None = None, artifact: str | Path | None = None
    ) -> dict[str, Any] | None:
        """The cached record of a key, or None when missing, unreadable or its artifact is gone (or is not
        `artifact`, when given: a rebuilt artifact invalidates what was measured on the old one)."""
        try:
            entry = json.loads(self.path(key, stage).read_text())
        except (OSError, ValueError):
            return None
        stored = entry.get("artifact") or ""
        if not stored or not Path(stored).exists():
            return None
        if artifact is not None and Path(stored) != Path(artifact):
            return None
        return entry["record"]

    def get_record(
        self, key: str, stage: str | None = None, artifact: str | Path | None = None
    ) -> VariantRecord | None:
        """`get` as a VariantRecord; an entry that is not a whole record counts as a miss (None)."""
        data = self.get(key, stage, artifact)
        try:
            return None if data is None else VariantRecord.from_dict(data)
        except (TypeError, ValueError, AttributeError):  # written by an incompatible version: redo it
            return None

    def put(
        self,
        key: str,
        artifact: str | Path,
        record: VariantRecord | Mapping[str, Any],
        stage: str | None = None,
    ) -> Path:
        """Store the record of a completed variant, or of a finished stage (atomic)."""
        plain = record.to_dict() if isinstance(record, VariantRecord) else dict(record)
        payload = {"key": key, "artifact": str(artifact), "record": plain}
        return write_json_atomic(self.path(key, stage), payload)

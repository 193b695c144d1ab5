"""What nightly-benchmark re-measures: the valid artifacts of the store, as records with their cells."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from segopt_core.pipeline.jobs import CheckpointRef
from segopt_core.pipeline.record import VariantRecord
from segopt_core.pipeline.selection import matches
from segopt_core.variants import CellSpec


def _checkpoint_paths(cache_root: Path) -> dict[str, str]:
    """artifact folder -> source checkpoint path, from optimize-all's result cache (when present)."""
    found = {}
    for path in sorted(cache_root.glob("*.json")):
        try:
            record = VariantRecord.from_dict(json.loads(path.read_text())["record"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # not a (whole) record
            continue
        if record.artifact and record.checkpoint:
            found[str(Path(record.artifact).resolve())] = record.checkpoint
    return found


def stored_variants(
    store_root: str | Path,
    cache_root: str | Path,
    cells: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
) -> list[tuple[VariantRecord, CellSpec]]:
    """(record, spec) of every valid artifact whose cell and variant slug match the filters."""
    from segopt_core.backends import ArtifactStore
    from segopt_core.backends.source import spec_from_dict

    sources = _checkpoint_paths(Path(cache_root))
    found = []
    for artifact in ArtifactStore(store_root).artifacts():
        meta = artifact.metadata
        if not matches(meta["cell"], cells) or (variants and meta["slug"] not in variants):
            continue
        sha, spec = meta["checkpoint_sha256"], spec_from_dict(meta["spec"])
        path = sources.get(str(artifact.path.resolve()), f"sha256:{sha[:12]}")
        record = VariantRecord.start(
            CheckpointRef(path, spec, sha),
            artifact.options,
            status="ok",
            artifact=str(artifact.path),
        )
        # the names this artifact was stored under (an older segopt may have named a variant otherwise)
        record = replace(record, cell=meta["cell"], variant=meta["slug"], options=dict(meta["options"]))
        found.append((record, spec))
    return found

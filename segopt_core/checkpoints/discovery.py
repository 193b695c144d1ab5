"""Find every SegFormer checkpoint under some paths, match each to its cell, reject the rest with a reason."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segopt_core.checkpoints.formats import WEIGHT_SUFFIXES, Arch, CheckpointError, sha256_file
from segopt_core.checkpoints.loading import inspect_checkpoint, match_inspection, validate_shapes
from segopt_core.checkpoints.matching import CellMatch
from segopt_core.checkpoints.reading import is_hf_folder


@dataclass(frozen=True)
class DiscoveredCheckpoint:
    """An accepted checkpoint: where, which format, which cell and why."""

    path: Path
    format: str
    match: CellMatch
    sha256: str
    arch: Arch

    @property
    def cell(self) -> str:
        """The matched cell's name."""
        return self.match.cell

    def to_dict(self) -> dict[str, Any]:
        """JSON-able row."""
        return {
            "path": str(self.path),
            "format": self.format,
            "sha256": self.sha256,
            "arch": self.arch.describe(),
            **self.match.to_dict(),
        }


@dataclass(frozen=True)
class RejectedFile:
    """A file or folder that is not a usable SegFormer checkpoint, and why."""

    path: Path
    reason: str

    def __post_init__(self) -> None:
        if not self.reason:
            raise ValueError(f"RejectedFile {self.path}: a rejection needs a reason")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able row."""
        return {"path": str(self.path), "reason": self.reason}


@dataclass(frozen=True)
class DiscoveryReport:
    """What `discover` found: accepted checkpoints and rejected files, in path order."""

    accepted: tuple[DiscoveredCheckpoint, ...]
    rejected: tuple[RejectedFile, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able report."""
        return {
            "accepted": [a.to_dict() for a in self.accepted],
            "rejected": [r.to_dict() for r in self.rejected],
        }

    def table(self, root: Path | None = None) -> str:
        """Readable table: a row per checkpoint, its evidence and warnings below, then the rejected files."""
        show = (lambda p: _relative(p, root)) if root else str
        rows = [("FILE", "FORMAT", "CELL", "SHA256")] + [
            (show(a.path), a.format, a.cell + (" (custom)" if a.match.custom else ""), a.sha256[:12])
            for a in self.accepted
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows[:1]]
        for row, entry in zip(rows[1:], self.accepted, strict=True):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            lines.extend(f"    evidence: {e}" for e in entry.match.evidence)
            lines.extend(f"    WARNING:  {w}" for w in entry.match.warnings)
        lines.append(f"\n{len(self.accepted)} accepted, {len(self.rejected)} rejected")
        lines.extend(f"  REJECTED {show(r.path)}: {r.reason}" for r in self.rejected)
        return "\n".join(lines)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


PERMISSION_HINT = "permission denied; fix its permissions or leave it out of the scanned paths"


def iter_candidates(paths: list[str | Path]) -> Iterator[Path | RejectedFile]:
    """Every HF folder and every non-hidden file under the paths (HF folders are not descended into).

    A folder that cannot be listed or entered is yielded as a RejectedFile ("permission denied").
    """
    for start in map(Path, paths):
        try:
            if not start.is_dir() or is_hf_folder(start):
                yield start
                continue
        except PermissionError:
            yield RejectedFile(start, PERMISSION_HINT)
            continue
        denied: list[RejectedFile] = []
        walk = os.walk(start, onerror=lambda err, out=denied, top=start: out.append(_denied(err, top)))
        for folder, dirs, files in walk:
            yield from _drain(denied)
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for d in list(dirs):
                try:
                    hf = is_hf_folder(here / d)
                except PermissionError:
                    dirs.remove(d)
                    yield RejectedFile(here / d, PERMISSION_HINT)
                    continue
                if hf:
                    dirs.remove(d)
                    yield here / d
            yield from (here / f for f in sorted(files) if not f.startswith("."))
        yield from _drain(denied)


def _denied(err: OSError, start: Path) -> RejectedFile:
    """The rejection of a folder os.walk could not list."""
    path = Path(err.filename) if err.filename else start
    if isinstance(err, PermissionError):
        return RejectedFile(path, PERMISSION_HINT)
    return RejectedFile(path, f"cannot list the folder ({err.strerror or err})")


def _drain(items: list[RejectedFile]) -> Iterator[RejectedFile]:
    while items:
        yield items.pop(0)


def examine(path: Path) -> DiscoveredCheckpoint | RejectedFile:
    """Accept (matched, shapes validated) or reject one candidate; reads headers/shapes, not the weights."""
    try:
        return _examine(path)
    except PermissionError:
        return RejectedFile(path, PERMISSION_HINT)


def _examine(path: Path) -> DiscoveredCheckpoint | RejectedFile:
    if not path.exists():
        return RejectedFile(path, "no such file or folder")
    if path.is_file() and path.suffix.lower() not in WEIGHT_SUFFIXES:
        extra = " (a config without weights next to it)" if path.suffix == ".json" else ""
        return RejectedFile(
            path,
            f"not a checkpoint file{extra}: extension {path.suffix or '(none)'!r}, "
            f"expected {', '.join(WEIGHT_SUFFIXES)} or an HF folder",
        )
    try:
        inspection = inspect_checkpoint(path, shapes_only=True)
        match = match_inspection(inspection)
        validate_shapes(inspection, match.spec)
        return DiscoveredCheckpoint(path, inspection.format, match, sha256_file(path), inspection.arch)
    except CheckpointError as exc:
        return RejectedFile(path, _reason(exc, path))
    except PermissionError:
        raise
    except Exception as exc:  # a scan must never crash on one odd file: record it and go on
        return RejectedFile(
            path, f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        )


def _reason(exc: Exception, path: Path) -> str:
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def discover(paths: list[str | Path], progress: bool = False) -> DiscoveryReport:
    """Walk files and folders, match each SegFormer checkpoint to its cell, reject the rest with a reason."""
    from tqdm import tqdm

    candidates = list(iter_candidates(paths))
    accepted, rejected = [], []
    for path in tqdm(candidates, desc="discover", unit="file", disable=not progress):
        result = path if isinstance(path, RejectedFile) else examine(path)
        (accepted if isinstance(result, DiscoveredCheckpoint) else rejected).append(result)
    return DiscoveryReport(tuple(accepted), tuple(rejected))

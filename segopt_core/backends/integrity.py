"""An artifact loads only what its metadata vouches for.

Every name metadata.json lists must stay inside the artifact folder (no absolute path, no `..`, no symbolic
link on the way); every file a backend loads must be listed, and its size and sha256 must match where it is
loaded; the loaded model's classes and input contract must match the metadata's cell. A `.pt2` package holds
compiled native code (docs/backends.md): these checks make sure that what runs is what the artifact built,
not that an artifact from elsewhere is safe to run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from segopt_core.backends.errors import ArtifactError

METADATA_FILE = "metadata.json"
# metadata keys that name a file a backend loads (packages[].file as well); an OpenVINO IR's weights are
# the .bin beside its .xml
LOADED_FILE_KEYS = ("model_file", "source_file", "calibration_file")


def sha256_bytes_file(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path) -> dict:
    """{size, sha256} of one artifact file."""
    return {"size": path.stat().st_size, "sha256": sha256_bytes_file(path)}


def listed_path(folder: Path, name: str) -> Path:
    """The file a metadata name stands for; ArtifactError when it would lead outside the artifact folder
    (an absolute name, a `..`, or a symbolic link anywhere below the folder)."""
    parts = PurePosixPath(str(name)).parts
    if not parts or PurePosixPath(str(name)).is_absolute() or ".." in parts or "\\" in str(name):
        raise ArtifactError(
            f"{folder / METADATA_FILE}: lists {str(name)[:80]!r}, a path outside the artifact folder; "
            "refusing to load anything from it (rebuild the artifact)"
        )
    path = folder
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise ArtifactError(
                f"{path}: a symbolic link inside the artifact; segopt loads only files the artifact folder "
                "holds (rebuild the artifact)"
            )
    return path


def check_listed_files(folder: Path, meta: dict) -> None:
    """Every listed file inside the folder, present, at its recorded size (ArtifactError: which, why)."""
    for name, record in meta["files"].items():
        path = listed_path(folder, name)
        if not path.is_file():
            raise ArtifactError(f"{path}: missing; rebuild the artifact")
        if path.stat().st_size != record["size"]:
            raise ArtifactError(
                f"{path}: {path.stat().st_size} bytes, metadata says {record['size']} (truncated?); "
                "rebuild the artifact"
            )


def loaded_files(meta: dict) -> list[str]:
    """The names of every file the artifact's backend loads, as the metadata gives them."""
    names = [str(meta[key]) for key in LOADED_FILE_KEYS if meta.get(key)]
    names += [str(entry["file"]) for entry in meta.get("packages") or []]
    names += [str(PurePosixPath(n).with_suffix(".bin")) for n in names if n.endswith(".xml")]
    return list(dict.fromkeys(names))


def verify_loaded_files(folder: Path, meta: dict, names: list[str] | None = None) -> None:
    """Each file the backend loads (`names`, default: loaded_files) is listed in the metadata and has its
    recorded size and sha256."""
    for name in loaded_files(meta) if names is None else names:
        path = listed_path(folder, name)
        record = meta["files"].get(name)
        if record is None:
            raise ArtifactError(
                f"{path}: loaded by the {meta['options'].get('backend')} backend but not listed in "
                f"{METADATA_FILE} (so not checked); rebuild the artifact"
            )
        if not path.is_file() or file_record(path) != {"size": record["size"], "sha256": record["sha256"]}:
            raise ArtifactError(
                f"{path}: contents differ from the metadata's size/sha256 (corrupt or replaced?); "
                "rebuild the artifact"
            )


def check_classes(path: Path, found: object, meta: dict) -> None:
    """ArtifactError when a loaded model's class count (its output channels) is not the metadata cell's."""
    from segopt_core.backends.source import spec_from_dict

    expected = spec_from_dict(meta["spec"]).num_classes
    if isinstance(found, int) and found != expected:
        raise ArtifactError(
            f"{path}: the model outputs {found} classes, the artifact's cell {meta.get('cell')} has "
            f"{expected}; it was replaced or built for another cell (rebuild the artifact)"
        )


def check_input(path: Path, channels: object, dtype: str) -> None:
    """ArtifactError unless a loaded model takes (N, 3, H, W) float32 pixel values."""
    if channels not in (3, None) or dtype not in ("float32", "float"):
        raise ArtifactError(
            f"{path}: the model takes {channels} channels of {dtype}, a segopt artifact takes (N, 3, H, W) "
            "float32 pixel values (rebuild the artifact)"
        )

"""The artifact store: one verified folder per (checkpoint sha256, variant options), written atomically.

Layout: `<root>/<sha256[:12]>/<slug>-<digest>/` holding the model file(s) and `metadata.json`.  A build
runs in a hidden `.tmp-*` sibling and is renamed into place only after it was verified, so a killed or
failed build never leaves a folder that is later used.  A folder whose metadata is unreadable or whose
files are missing/truncated (size differs from the metadata) is rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from torch import nn

from segopt_core import lifecycle
from segopt_core.atomic import apply_modes, write_json_atomic
from segopt_core.backends.batching import apply_micro_batch, measure_micro_batch
from segopt_core.backends.errors import ArtifactError, CalibrationError
from segopt_core.backends.folding import fold_decode_head
from segopt_core.backends.integrity import (
    METADATA_FILE,
    check_listed_files,
    file_record,
    listed_path,
    sha256_bytes_file,
    verify_loaded_files,
)
from segopt_core.backends.options import VariantOptions
from segopt_core.backends.registry import get_backend
from segopt_core.backends.source import spec_to_dict
from segopt_core.backends.verify import verify_predictor
from segopt_core.models import parameter_count
from segopt_core.variants import CellSpec

FORMAT_VERSION = 1
MIN_CALIBRATION_IMAGES = 4


@dataclass(frozen=True)
class Artifact:
    """A verified optimized variant on disk: its folder and its metadata (reused=True when not rebuilt)."""

    path: Path
    metadata: dict
    reused: bool = False

    @property
    def slug(self) -> str:
        """Variant name, e.g. 'onnxruntime-fp32-folded'."""
        return self.metadata["slug"]

    @property
    def options(self) -> VariantOptions:
        """The options it was built with."""
        return VariantOptions.from_dict(self.metadata["options"])

    @property
    def size_bytes(self) -> int:
        """Size on disk of every file of the artifact (source weights included)."""
        return int(self.metadata["size_bytes"])

    @property
    def model_files(self) -> list[Path]:
        """The files a user ships (a torch-compile variant's packages); every file where not listed."""
        names = self.metadata.get("model_files") or list(self.metadata["files"])
        return [self.path / name for name in names]


# --- files and metadata --------------------------------------------------------------------------------


def file_records(folder: Path) -> dict[str, dict]:
    """{relative name: {size, sha256}} of every file in an artifact folder except metadata and locks."""
    return {
        str(path.relative_to(folder)): file_record(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != METADATA_FILE and not path.name.startswith(".")
    }


def read_metadata(folder: str | Path) -> dict:
    """metadata.json of an artifact folder; ArtifactError naming the file when missing or invalid."""
    path = Path(folder) / METADATA_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise ArtifactError(
            f"{folder}: not a segopt artifact (no {METADATA_FILE}); build one with `segopt optimize`"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: invalid JSON ({exc}); delete the folder and rebuild") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format_version is not {FORMAT_VERSION}; rebuild the artifact")
    return data


def check_artifact(folder: str | Path) -> dict:
    """Metadata of a complete artifact, or ArtifactError saying what is missing or truncated."""
    folder = Path(folder)
    meta = read_metadata(folder)
    for key in ("slug", "options", "files", "spec", "verification"):
        if key not in meta:
            raise ArtifactError(f"{folder / METADATA_FILE}: missing key {key!r}; rebuild the artifact")
    check_listed_files(folder, meta)  # inside the folder (no '..', absolute or symlinked name), full size
    _check_packages(folder, meta)
    return meta


def _check_packages(folder: Path, meta: dict) -> None:
    """AOTInductor packages: present for compiled variants, intact (sha256), built for this machine."""
    from segopt_core.backends import aoti

    if meta["options"].get("backend") == "torch-compile" and not meta.get("packages"):
        raise ArtifactError(
            f"{folder / METADATA_FILE}: no AOTInductor packages (built by an older segopt); "
            "rebuild the artifact"
        )
    for entry in meta.get("packages") or []:
        path, record = listed_path(folder, entry["file"]), meta["files"].get(entry["file"])
        if record is None or sha256_bytes_file(path) != record["sha256"]:
            raise ArtifactError(
                f"{path}: contents differ from the metadata's sha256 (corrupt?); rebuild the artifact"
            )
        if "inductor_configs" not in entry:  # before 2026-11-29 the compile ran with grad on: no freezing
            raise ArtifactError(
                f"{path}: compiled without frozen weights by an older segopt (about 1.5x slower); "
                "rebuild the artifact"
            )
        aoti.check_machine(entry, folder)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape an artifact."""
    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "onnx", "onnxruntime", "tensorrt", "segopt_core"):
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError:
            continue
    return versions


# --- calibration images --------------------------------------------------------------------------------


def as_calibration_batch(images, options: VariantOptions) -> np.ndarray | None:
    """The (N,3,H,W) float32 calibration set used (first num_images), or None when not needed."""
    if options.precision != "int8-static":
        return None
    if images is None:
        raise CalibrationError(
            f"{options.slug} needs calibration images: pass calib_images= (or --calib-data DIR on the CLI)"
        )
    arr = (
        np.stack([np.asarray(im, np.float32) for im in images])
        if not isinstance(images, np.ndarray)
        else images
    )
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise CalibrationError(
            f"calibration images must be preprocessed (N,3,H,W) float32, got shape {arr.shape}"
        )
    if len(arr) < MIN_CALIBRATION_IMAGES:
        raise CalibrationError(
            f"only {len(arr)} calibration images; INT8 static needs at least {MIN_CALIBRATION_IMAGES} "
            f"(ideally {options.calibration.num_images}) representative images: add images to the folder"
        )
    return np.ascontiguousarray(arr[: options.calibration.num_images], dtype=np.float32)


def calibration_hash(batch: np.ndarray | None) -> str | None:
    """sha256 of the calibration tensor (part of the artifact key)."""
    if batch is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(batch).tobytes() + str(batch.shape).encode()).hexdigest()


def state_dict_sha256(model: nn.Module) -> str:
    """A content hash for a model without a checkpoint file (tests, in-memory models)."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# --- the store -----------------------------------------------------------------------------------------


class ArtifactStore:
    """Builds, verifies, reuses and lists optimized artifacts under one root folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder_for(self, sha256: str, options: VariantOptions, calib_hash: str | None = None) -> Path:
        """The artifact folder of a (checkpoint, options, calibration set) combination."""
        digest = (
            options.digest()
            if calib_hash is None
            else hashlib.sha256((options.digest() + calib_hash).encode()).hexdigest()[:8]
        )
        return self.root / sha256[:12] / f"{options.slug}-{digest}"

    def get_or_build(
        self,
        source,
        options: VariantOptions,
        calib_images: Sequence[np.ndarray] | np.ndarray | None = None,
        *,
        spec: CellSpec | None = None,
        sha256: str | None = None,
        force: bool = False,
    ) -> Artifact:
        """Reuse the valid artifact or build and verify it; `source`: a LoadedCheckpoint or an nn.Module."""
        model, spec, sha256 = _unpack_source(source, spec, sha256)
        calib = as_calibration_batch(calib_images, options)
        folder = self.folder_for(sha256, options, calibration_hash(calib))
        if not force:
            try:
                return Artifact(folder, check_artifact(folder), reused=True)
            except ArtifactError:
                pass  # missing or broken: (re)build below
        return self._build(model, spec, sha256, options, calib, folder, force)

    def _build(self, model, spec, sha256, options, calib, folder: Path, force: bool = False) -> Artifact:
        """Build in a temp sibling, verify, write metadata, then rename into place."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".tmp-{folder.name}-{lifecycle.owner_tag()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            meta = self._build_into(model, spec, sha256, options, calib, tmp)
            apply_modes(tmp)  # the one mode policy (safetensors writes 0600)
            return Artifact(_publish(tmp, folder, replace_valid=force), meta)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _build_into(self, model, spec, sha256, options, calib, tmp: Path) -> dict:
        """Run the backend's build + load + verification inside `tmp`; returns the final metadata."""
        module = get_backend(options.backend).module()
        meta = _base_metadata(spec, sha256, options, calib)
        start = time.perf_counter()
        meta.update(module.build(model.eval(), spec, options, tmp, calib))
        meta["build_seconds"] = round(time.perf_counter() - start, 3)
        start = time.perf_counter()
        predictor = module.load(tmp, meta, options)
        meta["verification"] = verify_predictor(model, predictor, spec, options.precision)
        meta["verification"]["seconds"] = round(time.perf_counter() - start, 3)
        if options.device == "cpu":  # on CUDA a larger batch always pays; on two cores it often does not
            meta["micro_batch"] = measure_micro_batch(predictor, spec.crop_size)
        meta["param_count"] = parameter_count(fold_decode_head(model) if options.fold_decode_head else model)
        meta["files"] = file_records(tmp)
        meta["size_bytes"] = sum(rec["size"] for rec in meta["files"].values())
        meta["built_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_json_atomic(tmp / METADATA_FILE, meta, sort_keys=True)
        return meta

    def artifacts(self) -> list[Artifact]:
        """Every valid artifact in the store (broken and temp folders are skipped)."""
        found = []
        for meta_path in sorted(self.root.glob(f"*/*/{METADATA_FILE}")):
            if meta_path.parent.name.startswith("."):
                continue
            try:
                found.append(Artifact(meta_path.parent, check_artifact(meta_path.parent), reused=True))
            except ArtifactError:
                continue
        return found

    def clean_temp(self, older_than_s: float = 86400.0) -> int:
        """Remove leftover `.tmp-*` folders of killed builds; returns how many.

        A folder whose build process (named in the folder) ran on this machine and is gone is removed at
        once; others (another machine on a shared store, or an old name without owner) only when older
        than `older_than_s`, so a build still running elsewhere is never pulled away.
        """
        removed = 0
        for tmp in self.root.glob("*/.tmp-*"):
            if lifecycle.abandoned(tmp, older_than_s):
                shutil.rmtree(tmp, ignore_errors=True)
                removed += 1
        return removed


def _unpack_source(source, spec: CellSpec | None, sha256: str | None) -> tuple[nn.Module, CellSpec, str]:
    """(model, spec, sha256) from a LoadedCheckpoint-like object or a bare module + keywords."""
    if isinstance(source, nn.Module):
        if spec is None:
            raise ValueError("get_or_build(model, ...) needs spec= when given a bare nn.Module")
        return source, spec, sha256 or state_dict_sha256(source)
    try:
        return source.model, spec or source.spec, sha256 or source.sha256
    except AttributeError:
        raise TypeError(
            "get_or_build expects a LoadedCheckpoint (model, spec, sha256) or an nn.Module, "
            f"got {type(source).__name__}"
        ) from None


def _base_metadata(spec: CellSpec, sha256: str, options: VariantOptions, calib: np.ndarray | None) -> dict:
    """The metadata fields known before building."""
    return {
        "format_version": FORMAT_VERSION,
        "slug": options.slug,
        "backend": options.backend,
        "precision": options.precision,
        "device": options.device,
        "options": options.to_dict(),
        "checkpoint_sha256": sha256,
        "spec": spec_to_dict(spec),
        "cell": spec.name,
        "calibration": None
        if calib is None
        else {
            **options.calibration.__dict__,
            "num_images_used": len(calib),
            "sha256": calibration_hash(calib),
        },
        "versions": library_versions(),
    }


def _publish(tmp: Path, folder: Path, replace_valid: bool = False) -> Path:
    """Rename a finished build into place, replacing a broken folder; a concurrent valid one wins.

    The valid folder stays (a reader may have it open) and the new build is discarded by the caller;
    `replace_valid` (a forced rebuild) replaces it anyway.
    """
    trash = None
    if folder.exists():
        if not replace_valid and _is_valid(folder):
            return folder
        trash = folder.parent / f".trash-{folder.name}-{uuid.uuid4().hex[:8]}"
        os.replace(folder, trash)
    try:
        os.replace(tmp, folder)
    except OSError:
        check_artifact(folder)  # another process published first; use it if valid
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return folder


def _is_valid(folder: Path) -> bool:
    try:
        check_artifact(folder)
    except ArtifactError:
        return False
    return True


def load_predictor(artifact: str | Path | Artifact, *, num_threads: int | None = None):
    """Load any artifact folder as a Predictor (BackendUnavailable where its backend cannot run here).

    Only what the metadata vouches for is loaded: every file the backend reads is listed, inside the
    folder, and has its recorded size and sha256; the backend checks the model's classes and input.
    """
    folder = artifact.path if isinstance(artifact, Artifact) else Path(artifact)
    meta = check_artifact(folder)
    verify_loaded_files(folder, meta)
    options = VariantOptions.from_dict(meta["options"])
    try:
        predictor = get_backend(options.backend).module().load(folder, meta, options, num_threads=num_threads)
    except KeyError as exc:  # a key the backend needs (model_file, packages, ...) is missing
        raise ArtifactError(f"{folder / METADATA_FILE}: missing key {exc}; rebuild the artifact") from None
    return apply_micro_batch(predictor, meta)

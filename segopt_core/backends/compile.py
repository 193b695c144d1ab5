"""torch.compile variants shipped as AOTInductor packages: fp32, bf16/fp16 autocast and PT2E INT8 (torchao).

Build exports the (folded) model once with a dynamic batch and dynamic H/W (multiples of 32) and compiles
it ahead of time into `packages/*.pt2` (see `aoti.py`): freezing, bf16/fp16 autocast and the PT2E
quantization are baked in.  On CUDA (fp16, bf16, fp32) the same export is compiled into Triton kernels and a
CUDA package (`*-cuda.pt2`, batch up to 64), optionally replayed as one CUDA graph per input shape
(`extra=(("cuda_graphs", "on"),)`).  Loading a package takes seconds and never compiles.  An input size
the packages do not serve (not a multiple of 32, e.g. a whole-image evaluation) is compiled once, on first
use, into a new static package that is verified against the fp32 model like a build, logged, and added to
the artifact for every later load (PackagedPredictor).  The fp32 source weights stay in the artifact: they
are the reference, and what a new size is compiled from.
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segopt_core.backends import aoti, attention, torch_backends
from segopt_core.backends.errors import ArtifactError, BackendUnavailable, ReadOnlyArtifact, VerificationError
from segopt_core.backends.folding import fold_decode_head
from segopt_core.backends.integrity import check_classes, verify_loaded_files
from segopt_core.backends.options import VariantOptions
from segopt_core.backends.quiet import quiet_library_warnings
from segopt_core.backends.source import save_source
from segopt_core.backends.torch_backends import prepare_model
from segopt_core.backends.verify import TOLERANCES
from segopt_core.errors import OptionError
from segopt_core.variants import CellSpec

CALIB_FILE = "calibration.safetensors"
log = logging.getLogger("segopt.compile")


def pt2e_api():
    """(prepare_pt2e, convert_pt2e, X86InductorQuantizer, default config) from torchao or torch.ao."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ImportError:
        try:  # older torch releases shipped PT2E in torch.ao
            from torch.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e
            from torch.ao.quantization.quantizer import x86_inductor_quantizer as xiq
        except ImportError:
            raise BackendUnavailable(
                f"PT2E INT8 needs torchao (torch {torch.__version__} moved PT2E out of torch.ao): "
                "pip install torchao"
            ) from None
    return (
        prepare_pt2e,
        convert_pt2e,
        xiq.X86InductorQuantizer,
        xiq.get_default_x86_inductor_quantization_config,
    )


def check_available(options: VariantOptions) -> None:
    """BackendUnavailable where this variant cannot run here (no CUDA, no torchao for PT2E)."""
    availability_notes(options)


def availability_notes(options: VariantOptions) -> dict:
    """BackendUnavailable where this variant cannot run; notes otherwise.

    fp16 variants are placed on CUDA by `VariantOptions`, so on a machine without CUDA they are skipped
    with the no-CUDA reason, like torch fp16 and TensorRT.
    """
    if cuda_graphs_requested(options) and options.device != "cuda":
        raise OptionError(f"{options.slug}: extra cuda_graphs=on needs device 'cuda', not {options.device!r}")
    notes = torch_backends.availability_notes(options)
    if options.precision == "int8-static":
        pt2e_api()
    return notes


def cuda_graphs_requested(options: VariantOptions) -> bool:
    """True when the variant asks for CUDA graph replay (`extra=(("cuda_graphs", "on"),)`)."""
    return dict(options.extra).get("cuda_graphs") == "on"


class Autocast(nn.Module):
    """Runs the model under CPU/CUDA autocast to `dtype` and returns fp32 logits (exported as one graph)."""

    def __init__(self, model: nn.Module, device: str = "cpu", dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.model, self.device_type, self.dtype = model, torch.device(device).type, dtype

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            return self.model(pixel_values).float()


def quantize_pt2e(model: nn.Module, calib: torch.Tensor, shapes: aoti.PackageShapes) -> nn.Module:
    """PT2E static INT8 with the x86 inductor quantizer, calibrated image by image on `calib`."""
    prepare_pt2e, convert_pt2e, quantizer_cls, default_config = pt2e_api()
    example = calib[:2] if len(calib) >= 2 else calib.repeat(2, 1, 1, 1)
    exported = torch.export.export(model, (example,), dynamic_shapes=aoti.dynamic_shapes(shapes)).module()
    prepared = prepare_pt2e(exported, quantizer_cls().set_global(default_config()))
    with torch.no_grad():
        for image in calib:
            prepared(image[None])
    return convert_pt2e(prepared)


def exportable(
    model: nn.Module, options: VariantOptions, shapes: aoti.PackageShapes, calib: torch.Tensor | None
) -> nn.Module:
    """What gets exported for a package: the (folded) model, under bf16/fp16 autocast or PT2E-quantized."""
    if options.precision in ("bf16", "fp16"):
        graph = attention.for_precision(model, options.precision, options.device)
        return Autocast(graph, options.device, torch_backends.AUTOCAST[options.precision])
    if options.precision == "int8-static":
        if calib is None:
            raise ArtifactError(f"{options.slug}: the artifact has no calibration images to quantize with")
        if not shapes.dynamic_hw:  # a static package calibrates on the images resized to its size
            calib = F.interpolate(calib, size=(shapes.height, shapes.width), mode="bilinear")
        return quantize_pt2e(model, calib, shapes)
    return model


def build_package(
    model: nn.Module,
    options: VariantOptions,
    shapes: aoti.PackageShapes,
    folder: Path,
    crop_hw: tuple[int, int],
    calib: torch.Tensor | None,
) -> dict:
    """Compile one package for `shapes` into folder/packages/; returns its metadata entry.

    The package is checked against the exported module run eagerly; one that disagrees (an inductor
    miscompile, see aoti.SAFE_INDUCTOR_CONFIGS) is rebuilt without layout optimization.
    """
    path = folder / aoti.PACKAGE_DIR / aoti.package_name(shapes, options.device)
    with quiet_library_warnings():
        module = exportable(on_device(model, options.device).eval(), options, shapes, calib)
        entry = aoti.compile_package(module, shapes, path, crop_hw, device=options.device)
        tolerance = TOLERANCES[options.precision].max_rel_diff
        diff = package_vs_eager(module, path, shapes, options.device)
        if diff <= tolerance:
            return entry
        log.warning(
            "%s: the package's logits differ from the eager module's by %.3g (relative; tolerance %.3g); "
            "rebuilding without inductor's layout optimization (slower)",
            path,
            diff,
            tolerance,
        )
        entry = aoti.compile_package(
            module, shapes, path, crop_hw, aoti.SAFE_INDUCTOR_CONFIGS, device=options.device
        )
        safe_diff = package_vs_eager(module, path, shapes, options.device)
        if safe_diff > tolerance:
            path.unlink(missing_ok=True)
            raise VerificationError(
                f"{path}: the compiled package differs from the eager module by {diff:.3g} (relative), and "
                f"by {safe_diff:.3g} without layout optimization (tolerance {tolerance:.3g})"
            )
        return {**entry, "rebuilt_because": f"layout-optimized package was {diff:.3g} (relative) off eager"}


def on_device(model: nn.Module, device: str) -> nn.Module:
    """`model` on `device`: a copy when it must move, so the caller's model (the verification reference,
    whose encoder a folded graph shares) stays on the CPU."""
    wanted = torch.device(device).type
    if all(t.device.type == wanted for t in (*model.parameters(), *model.buffers())):
        return model
    return copy.deepcopy(model).to(device)


def package_vs_eager(module: nn.Module, path: Path, shapes: aoti.PackageShapes, device: str) -> float:
    """Max |package - eager| relative to max |eager| on one small input the package serves."""
    hw = (128, 96) if shapes.dynamic_hw else (shapes.height, shapes.width)
    pixels = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(3)).to(device)
    with torch.no_grad():
        eager = module(pixels).float()
        packaged = aoti.load_package(path)(pixels).float()
    return float((packaged - eager).abs().max() / eager.abs().max().clamp_min(1e-12))


def build(model: nn.Module, spec: CellSpec, options: VariantOptions, folder: Path, calib=None) -> dict:
    """Source weights, calibration images and the AOTInductor package for the cell's crop size."""
    from safetensors.torch import save_file

    notes = availability_notes(options)
    meta = save_source(model, folder)
    calib_tensor = None if calib is None else torch.from_numpy(np.ascontiguousarray(calib))
    if calib_tensor is not None:
        save_file({"images": calib_tensor}, str(folder / CALIB_FILE))
        meta["calibration_file"] = CALIB_FILE
    graph = fold_decode_head(model) if options.fold_decode_head else model
    shapes = aoti.shapes_for(*spec.crop_size, aoti.max_batch_for(options.device))
    meta["packages"] = [build_package(graph, options, shapes, folder, spec.crop_size, calib_tensor)]
    meta["model_files"] = [entry["file"] for entry in meta["packages"]]  # what a user ships
    meta["compiled"] = _compile_steps(options)
    return {**meta, **notes}


def _compile_steps(options: VariantOptions) -> list[str]:
    """What the package has baked in, for the metadata."""
    steps = ["fold_decode_head"] if options.fold_decode_head else []
    if options.precision == "int8-static":
        steps.append("prepare_pt2e(X86InductorQuantizer) + calibration + convert_pt2e")
    if options.precision in ("bf16", "fp16"):
        dtype = {"bf16": "bfloat16", "fp16": "float16"}[options.precision]
        steps.append(f"torch.autocast({options.device}, {dtype})")
        steps += attention.build_steps(options.precision, options.device)
    steps += ["torch.export (dynamic batch, H/W)", "aoti_compile_and_package (configs: packages[])"]
    if cuda_graphs_requested(options):
        steps.append("at load: one CUDA graph per input shape (CudaGraphs)")
    return steps


class CudaGraphs:
    """A package runner replayed as one CUDA graph per input shape: no per-kernel launches from the CPU.

    The first call at a shape warms the runner up on a side stream, then captures one call into static
    input/output buffers; later calls copy their input in, replay, and return a copy of the output.  At
    most `max_graphs` shapes are captured (each keeps its activations' memory); other shapes, and every
    call after a capture that failed, run the package directly.
    """

    def __init__(self, runner, max_graphs: int = 8) -> None:
        self.runner, self.max_graphs = runner, max_graphs
        self.graphs: dict[tuple, tuple] = {}
        self.failed = ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, str(x.device))
        if key not in self.graphs:
            if self.failed or len(self.graphs) >= self.max_graphs:
                return self.runner(x)
            try:
                self.graphs[key] = self._capture(x)
            except Exception as exc:  # a package whose calls cannot be captured still runs, ungraphed
                self.failed = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.warning("CUDA graph capture failed (%s); running the package without graphs", self.failed)
                return self.runner(x)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()  # the next replay overwrites static_out

    def _capture(self, x: torch.Tensor) -> tuple:
        """(graph, static input, static output) of one call at x's shape."""
        static_in = x.clone()
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):  # lazy initialisation must not happen inside the capture
            for _ in range(2):
                self.runner(static_in)
        torch.cuda.current_stream(x.device).wait_stream(side)
        torch.cuda.synchronize(x.device)  # the warm-up's "run finished" event is complete before capture
        graph = torch.cuda.CUDAGraph()
        # relaxed: AOTInductor's model container queries (cudaEventQuery) the event its previous run
        # recorded before each run, a call the default (global) capture mode refuses
        with torch.cuda.graph(graph, capture_error_mode="relaxed"):
            static_out = self.runner(static_in)
        return graph, static_in, static_out


class PackagedPredictor:
    """The Predictor over an artifact's packages: picks the package serving each input size, loading it once.

    Each package is checked when it is loaded: its sha256 where the artifact's load did not check it yet,
    then one call on the smallest input it serves (its classes and output size against the metadata).
    A size no package serves is compiled on first use from the source weights, verified against the fp32
    model at that size like a build, logged, and added to the artifact (file written atomically,
    metadata.json rewritten atomically under a lock), so each size is compiled once per artifact;
    `metadata` (the dict given to `load`) is updated in place. The time that takes inside calls is in
    `first_use_seconds` (the benchmark keeps it out of first_call_ms) and the entries in
    `compiled_on_first_use`. A read-only artifact cannot take a new package: ReadOnlyArtifact says what to do.
    """

    def __init__(
        self, folder: Path, metadata: dict, options: VariantOptions, cuda_graphs: bool | None = None
    ) -> None:
        self.folder, self.metadata, self.options = Path(folder), metadata, options
        self.name, self.precision, self.device = options.slug, options.precision, options.device
        requested = cuda_graphs_requested(options) if cuda_graphs is None else cuda_graphs
        self.cuda_graphs = requested and torch.device(self.device).type == "cuda"
        self.runners: dict[str, object] = {}
        self.vouched = {entry["file"] for entry in metadata.get("packages") or []}  # checked by the load
        self.first_use_seconds = 0.0
        self.compiled_on_first_use: list[dict] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        return self.run_tensor(x).float().cpu().numpy()

    def run_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a float32 (N,3,H,W) tensor already on the predictor's device, left there (no copies).

        Batches above the package's range are split into chunks it takes.
        """
        height, width = int(x.shape[-2]), int(x.shape[-1])
        runner = self.runner_for(height, width)
        limit = self._entry_for(height, width)["shapes"]["max_batch"]
        with torch.inference_mode():
            outs = [runner(chunk) for chunk in x.split(limit)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def runner_for(self, height: int, width: int):
        """The loaded package serving (height, width), compiling and adding one when none does."""
        entry = self._entry_for(height, width) or self._add_package(height, width)
        if entry["file"] not in self.runners:
            aoti.check_machine(entry, self.folder)
            if entry["file"] not in self.vouched:  # recorded by another process since this load
                verify_loaded_files(self.folder, self.metadata, [entry["file"]])
            runner = aoti.load_package(self.folder / entry["file"])
            self._check_contract(runner, entry)
            self.runners[entry["file"]] = CudaGraphs(runner) if self.cuda_graphs else runner
        return self.runners[entry["file"]]

    def _check_contract(self, runner, entry: dict) -> None:
        """One call on the smallest input the package serves: its classes and output size as metadata says."""
        shapes = aoti.PackageShapes(**entry["shapes"])
        h, w = (aoti.MIN_SIDE, aoti.MIN_SIDE) if shapes.dynamic_hw else (shapes.height, shapes.width)
        path = self.folder / entry["file"]
        try:
            with torch.inference_mode():
                out = runner(torch.zeros(1, 3, h, w, device=self.device))
        except Exception as exc:  # e.g. a static package listed as dynamic
            raise ArtifactError(
                f"{path}: does not run on a 1x3x{h}x{w} input its metadata says it serves "
                f"({type(exc).__name__}); rebuild the artifact"
            ) from None
        check_classes(path, int(out.shape[1]), self.metadata)
        if tuple(out.shape[2:]) != (-(-h // 4), -(-w // 4)):
            raise ArtifactError(
                f"{path}: returns {tuple(out.shape)} for a 1x3x{h}x{w} input, not (1, C, H/4, W/4); "
                "rebuild the artifact"
            )

    def _entry_for(self, height: int, width: int) -> dict | None:
        """The first package entry whose shapes serve (height, width)."""
        for entry in self.metadata["packages"]:
            if aoti.PackageShapes(**entry["shapes"]).serves(height, width):
                return entry
        return None

    def _add_package(self, height: int, width: int) -> dict:
        """Compile, verify and record a package for a new size (once, across processes)."""
        from segopt_core.lifecycle import file_lock

        start = time.perf_counter()
        try:
            self._check_writable(height, width)
            with file_lock(self.folder / ".packages.lock"):
                entry = self._add_package_locked(height, width)
        except PermissionError as exc:  # the lock file could not be made: same answer as a read-only folder
            raise self._read_only(height, width) from exc
        except OSError as exc:
            if exc.errno != errno.EROFS:
                raise
            raise self._read_only(height, width) from None
        self.first_use_seconds += time.perf_counter() - start
        return entry

    def _add_package_locked(self, height: int, width: int) -> dict:
        self._reload_packages()
        entry = self._entry_for(height, width)
        if entry is not None:  # another process added it meanwhile
            return entry
        start = time.perf_counter()
        entry, model = self._compile_size(aoti.shapes_for(height, width, aoti.max_batch_for(self.device)))
        entry["verification"] = self._verify_size(entry, model, height, width)
        entry |= {"added_on_first_use": True, "first_use_seconds": round(time.perf_counter() - start, 3)}
        self.metadata["packages"].append(entry)
        self.metadata.setdefault("model_files", []).append(entry["file"])
        self.vouched.add(entry["file"])
        self._persist(entry)
        self.compiled_on_first_use.append(entry)
        log.warning(
            "%s: no package served %dx%d: compiled one on first use in %.1f s, verified it against the fp32 "
            "model (max rel diff %.2g, argmax agreement %.4f) and added it to %s (once per size)",
            self.name, height, width, entry["first_use_seconds"], entry["verification"]["max_rel_diff"],
            entry["verification"]["argmax_agreement"], self.folder,
        )  # fmt: skip
        return entry

    def _verify_size(self, entry: dict, model: nn.Module, height: int, width: int) -> dict:
        """The new package against the fp32 source model at its size (the build's tolerances)."""
        from segopt_core.backends.verify import verify_at

        path = self.folder / entry["file"]
        runner = aoti.load_package(path)

        def predict(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return runner(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()

        try:
            return verify_at(model.cpu(), predict, (1, 3, height, width), self.precision, self.name)
        except VerificationError:
            path.unlink(missing_ok=True)  # never left for a later load to pick up
            raise

    def _check_writable(self, height: int, width: int) -> None:
        """ReadOnlyArtifact before minutes of compiling that could not be kept."""
        if not os.access(self.folder, os.W_OK):
            raise self._read_only(height, width)

    def _read_only(self, height: int, width: int) -> ReadOnlyArtifact:
        return ReadOnlyArtifact(
            f"{self.folder}: read-only, and none of its packages serves {height}x{width} inputs (compiling "
            "one needs to add it to the artifact); copy the artifact to a writable folder, or add that size "
            f"once where it is writable (`segopt benchmark --artifact DIR --input-size {height}x{width}`)"
        )

    def _compile_size(self, shapes: aoti.PackageShapes) -> tuple[dict, nn.Module]:
        """Rebuild the variant's graph from the source weights and compile it for `shapes`; the entry and
        the fp32 model it was compiled from."""
        model, spec = prepare_model(self.folder, self.metadata, self.options)
        calib = None
        if self.metadata.get("calibration_file"):
            from safetensors.torch import load_file

            calib = load_file(str(self.folder / self.metadata["calibration_file"]))["images"]
        return build_package(model, self.options, shapes, self.folder, spec.crop_size, calib), model

    def _reload_packages(self) -> None:
        """Pick up packages another process recorded in metadata.json (no-op while the artifact builds)."""
        from segopt_core.backends.artifacts import METADATA_FILE, read_metadata

        if (self.folder / METADATA_FILE).exists():
            stored = read_metadata(self.folder)
            self.metadata["packages"], self.metadata["model_files"] = (
                stored["packages"],
                stored["model_files"],
            )

    def _persist(self, entry: dict) -> None:
        """Add the new package to metadata.json's packages and file records (skipped while building)."""
        from segopt_core.atomic import write_json_atomic
        from segopt_core.backends.artifacts import METADATA_FILE, file_record

        if not (self.folder / METADATA_FILE).exists():
            return  # inside a build: the store records every file once the build is verified
        self.metadata.setdefault("files", {})[entry["file"]] = file_record(self.folder / entry["file"])
        self.metadata["size_bytes"] = sum(rec["size"] for rec in self.metadata["files"].values())
        write_json_atomic(self.folder / METADATA_FILE, self.metadata, sort_keys=True)


def load(
    folder: Path, metadata: dict, options: VariantOptions, num_threads: int | None = None
) -> PackagedPredictor:
    """The artifact's packages behind the Predictor interface (loaded lazily, per input size)."""
    check_available(options)
    if "packages" not in metadata:
        raise ArtifactError(
            f"{Path(folder) / 'metadata.json'}: a torch-compile artifact without AOTInductor packages "
            "(built by an older segopt); re-run optimize to rebuild it"
        )
    if num_threads:
        torch.set_num_threads(num_threads)
    return PackagedPredictor(folder, metadata, options)

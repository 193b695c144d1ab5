"""AOTInductor packages: a model exported once with `torch.export` and compiled into a shippable `.pt2`.

One package serves a range of input shapes: any batch size from 1 to `MAX_BATCH` and, where SegFormer
exports with symbolic sizes, any height and width that are multiples of 32 between 64 and 2048 (at 32 the
last stage shrinks to 1x1 and the export specialises).  Other sizes get a static package of their own.
A CPU package runs only on the torch version and CPU instruction set it was compiled for, a CUDA package
(Triton kernels, batch up to `CUDA_MAX_BATCH`) only on the torch and CUDA versions and the GPU architecture
it was compiled for; `machine_tag` names them, and a package built elsewhere is refused with an error naming
the file and the mismatch.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from segopt_core.atomic import FILE_MODE
from segopt_core.backends.errors import ArtifactError

MAX_BATCH = 16
CUDA_MAX_BATCH = 64  # a GPU's throughput still grows past 16 images per call (the GPU headline runs 32)
SIDE_STEP, MIN_SIDE, MAX_SIDE = 32, 64, 2048
PACKAGE_DIR = "packages"
# freezing: weights become graph constants, so inductor folds BN/scales and pre-packs weights for oneDNN
# (the x86 INT8 patterns of PT2E are only fused with it).
INDUCTOR_CONFIGS = {"freezing": True}
# torch 2.13's layout optimization miscompiles some bf16 graphs with symbolic H/W (seen: decode heads of
# 64 channels or fewer give logits 50 % off at every size); it is also 3x faster on real models, so it
# stays on and a package that disagrees with eager is rebuilt with it off (compile.build_package).
SAFE_INDUCTOR_CONFIGS = {**INDUCTOR_CONFIGS, "layout_optimization": False}


@dataclass(frozen=True)
class PackageShapes:
    """The input shapes a package serves: batch range, and H/W either symbolic (step 32) or fixed."""

    max_batch: int = MAX_BATCH
    height: int | None = None  # None: any multiple of SIDE_STEP in [MIN_SIDE, MAX_SIDE]
    width: int | None = None

    @property
    def dynamic_hw(self) -> bool:
        """True when H and W are symbolic."""
        return self.height is None

    def serves(self, height: int, width: int) -> bool:
        """True when an input of (height, width) may be given to this package."""
        if self.dynamic_hw:
            return all(side % SIDE_STEP == 0 and MIN_SIDE <= side <= MAX_SIDE for side in (height, width))
        return (height, width) == (self.height, self.width)

    @property
    def file_name(self) -> str:
        """The package's file name inside the artifact's packages/ folder."""
        hw = f"hw{MIN_SIDE}-{MAX_SIDE}s{SIDE_STEP}" if self.dynamic_hw else f"{self.height}x{self.width}"
        return f"model-b1-{self.max_batch}-{hw}.pt2"

    def describe(self) -> str:
        """Human-readable range, for logs and metadata."""
        hw = (
            f"H, W multiples of {SIDE_STEP} in [{MIN_SIDE}, {MAX_SIDE}]"
            if self.dynamic_hw
            else f"{self.height}x{self.width}"
        )
        return f"batch 1-{self.max_batch}, {hw}"


def max_batch_for(device: str) -> int:
    """The largest batch one call of a package compiled for `device` takes."""
    return CUDA_MAX_BATCH if torch.device(device).type == "cuda" else MAX_BATCH


def shapes_for(height: int, width: int, max_batch: int = MAX_BATCH) -> PackageShapes:
    """The dynamic-H/W package where (height, width) fits its range, else a static one for that size."""
    dynamic = PackageShapes(max_batch=max_batch)
    return dynamic if dynamic.serves(height, width) else PackageShapes(max_batch, height, width)


def package_name(shapes: PackageShapes, device: str = "cpu") -> str:
    """The package's file name: the shapes it serves, and '-cuda' for a CUDA package."""
    if torch.device(device).type != "cuda":
        return shapes.file_name
    return shapes.file_name.removesuffix(".pt2") + "-cuda.pt2"


def example_batch(device: str = "cpu", threads: int | None = None) -> int:
    """The batch size of the export's example input, which inductor takes as the batch's size hint.

    Batch 1 would specialise the dimension, so the floor is 2. On the CPU, inductor's C++ kernels run their
    outer loops in parallel until the loops' hinted sizes multiply to the thread count or twice it; a hint
    equal to the thread count made the batch loop alone qualify, and at batch 1 those kernels (input cast,
    per-head copies, the head's upsampling, the logits cast) ran on one thread of two. A hint of 3 (2 on
    three threads) never qualifies alone, so they split rows too (B0 bf16, Zen 5, two threads: 28.4 ->
    25.9 ms at batch 1, docs/backends.md).
    """
    if torch.device(device).type != "cpu":
        return 2
    threads = torch.get_num_threads() if threads is None else threads
    return 2 if threads == 3 else 3


def example_input(shapes: PackageShapes, fallback_hw: tuple[int, int], device: str = "cpu") -> torch.Tensor:
    """A (example_batch, 3, H, W) input for export (H/W: the package's, else `fallback_hw`)."""
    h, w = fallback_hw if shapes.dynamic_hw else (shapes.height, shapes.width)
    batch = min(example_batch(device), shapes.max_batch)
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)


def dynamic_shapes(shapes: PackageShapes) -> tuple[dict, ...]:
    """torch.export's dynamic_shapes for the pixel_values argument."""
    dims: dict = {0: torch.export.Dim("batch", min=1, max=shapes.max_batch)}
    if shapes.dynamic_hw:
        lo, hi = MIN_SIDE // SIDE_STEP, MAX_SIDE // SIDE_STEP
        dims[2] = SIDE_STEP * torch.export.Dim("h_blocks", min=lo, max=hi)
        dims[3] = SIDE_STEP * torch.export.Dim("w_blocks", min=lo, max=hi)
    return (dims,)


def machine_tag(device: str = "cpu") -> dict[str, str]:
    """What a package is bound to: the torch version and what inductor generated code for (CPU ISA or GPU)."""
    if torch.device(device).type == "cuda":
        return {"torch": torch.__version__, "cuda": torch.version.cuda or "none", "gpu_arch": cuda_arch()}
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    return {"torch": torch.__version__, "vec_isa": str(pick_vec_isa()) or "none"}


def cuda_arch() -> str:
    """The compute capability of CUDA device 0 as 'sm_90', 'none' without a CUDA device."""
    if not torch.cuda.is_available():
        return "none"
    major, minor = torch.cuda.get_device_capability(0)
    return f"sm_{major}{minor}"


def check_machine(entry: dict, folder: Path) -> None:
    """ArtifactError naming the package when it was compiled for another torch version, CPU ISA or GPU."""
    here = machine_tag(entry.get("device", "cpu"))  # entries written before CUDA packages are CPU ones
    built = {key: entry.get(key) for key in here}
    mismatch = [
        f"{key} {built[key]!r} (this machine: {here[key]!r})" for key in here if built[key] != here[key]
    ]
    if mismatch:
        raise ArtifactError(
            f"{folder / entry['file']}: compiled for another machine: {', '.join(mismatch)}; "
            "the artifact must be rebuilt here (segopt rebuilds it on the next optimize)"
        )


def compile_package(
    module: nn.Module,
    shapes: PackageShapes,
    path: Path,
    crop_hw: tuple[int, int],
    inductor_configs: dict = INDUCTOR_CONFIGS,
    device: str = "cpu",
) -> dict:
    """Export `module` (on `device`) for `shapes` and AOT-compile it to `path` (written atomically).

    Returns the package's metadata entry.  On CUDA inductor generates Triton kernels and a CUDA wrapper.
    """
    start = time.perf_counter()
    example = example_input(shapes, crop_hw, device)
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes=dynamic_shapes(shapes))
    exported = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{time.monotonic_ns()}.pt2")
    try:
        with torch.no_grad():  # inductor applies `freezing` only when grad is off
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(tmp), inductor_configs=dict(inductor_configs)
            )
        os.chmod(tmp, FILE_MODE)  # the one mode policy (segopt_core/atomic.py)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "file": f"{PACKAGE_DIR}/{path.name}",
        "shapes": asdict(shapes),
        "serves": shapes.describe(),
        "export_seconds": round(exported - start, 3),
        "compile_seconds": round(time.perf_counter() - exported, 3),
        "inductor_configs": dict(inductor_configs),
        "example_batch": int(example.shape[0]),
        "compile_threads": torch.get_num_threads(),
        "device": torch.device(device).type,
        **machine_tag(device),
    }


def load_package(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The compiled model in `path`; ArtifactError naming the file when it cannot be loaded.

    A CPU package with one output runs through `GilFreeRunner` (torch's loader holds the GIL for the whole
    call), the others through torch's loader.
    """
    runner = GilFreeRunner.open(path) if not path.name.endswith("-cuda.pt2") else None
    if runner is not None:
        return runner
    try:
        return torch._inductor.aoti_load_package(str(path))
    except Exception as exc:  # a corrupt zip, a missing .so, an ABI mismatch: all mean "rebuild"
        raise ArtifactError(
            f"{path}: cannot load the AOTInductor package ({type(exc).__name__}: {str(exc)[:200]}); "
            "delete the artifact folder or re-run optimize to rebuild it"
        ) from None


class GilFreeRunner:
    """A CPU package's model run through the AOTInductor C ABI with ctypes, which releases the GIL.

    torch's package loader holds the GIL for the whole call (pytorch/pytorch#197516): a 100 ms model call
    stops every other Python thread for 100 ms (the video pipeline's decoder, overlay and encoder). ctypes
    releases the GIL around a foreign call, so the same compiled model, called through the ABI the loader
    itself uses (`AOTInductorModelContainerRun`), lets them run beside it. Outputs are bit-identical.
    """

    def __init__(self, library: ctypes.CDLL, handle: ctypes.c_void_p, num_outputs: int) -> None:
        self._lib, self._handle, self._num_outputs = library, handle, num_outputs

    @classmethod
    def open(cls, path: Path) -> GilFreeRunner | None:
        """The runner of a CPU package with one output; None where the package is not one (torch's loader
        then runs it)."""
        import tempfile
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                libraries = [n for n in archive.namelist() if n.endswith(".so")]
                if len(libraries) != 1 or any(n.endswith(".cubin") for n in archive.namelist()):
                    return None
                with tempfile.TemporaryDirectory(prefix="segopt-aoti-") as tmp:
                    # loaded, the library stays mapped after its file is gone
                    library = ctypes.CDLL(archive.extract(libraries[0], tmp))
            handle, outputs = ctypes.c_void_p(), ctypes.c_size_t()
            if library.AOTInductorModelContainerCreateWithDevice(
                ctypes.byref(handle), ctypes.c_size_t(1), b"cpu", None
            ):
                return None
            runner = cls(library, handle, 0)  # from here on, dropping it frees the container
            if library.AOTInductorModelContainerGetNumOutputs(handle, ctypes.byref(outputs)):
                return None
            runner._num_outputs = outputs.value
            return runner if outputs.value == 1 else None
        except (OSError, AttributeError, zipfile.BadZipFile):  # not a library or symbols of this ABI
            return None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output for one input tensor."""
        inputs = torch._C._aoti.unsafe_alloc_void_ptrs_from_tensors([x])  # handles the call takes over
        input_array = (ctypes.c_void_p * 1)(_capsule_pointer(inputs[0], None))
        output_array = (ctypes.c_void_p * self._num_outputs)()
        error = self._lib.AOTInductorModelContainerRun(
            self._handle, input_array, ctypes.c_size_t(1), output_array,
            ctypes.c_size_t(self._num_outputs), None, None,
        )  # fmt: skip
        if error:
            raise RuntimeError(f"AOTInductor run failed on an input of shape {tuple(x.shape)}")
        outputs = [_capsule(output_array[i], None, None) for i in range(self._num_outputs)]
        return torch._C._aoti.alloc_tensors_by_stealing_from_void_ptrs(outputs)[0]

    def __del__(self) -> None:
        if self._handle:
            self._lib.AOTInductorModelContainerDelete(self._handle)
            self._handle = None


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype, _capsule_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
_capsule = ctypes.pythonapi.PyCapsule_New
_capsule.restype, _capsule.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]

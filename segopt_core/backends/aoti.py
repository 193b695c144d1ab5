"""AOTInductor packages: a model exported once with `torch.export` and compiled into a shippable `.pt2`.

One package serves a range of input shapes: any batch size from 1 to `MAX_BATCH` and, where SegFormer
exports with symbolic sizes, any height and width that are multiples of 32 between 64 and 2048 (at 32 the
last stage shrinks to 1x1 and the export specialises).  Other sizes get a static package of their own.
A package runs only on the torch version and CPU instruction set it was compiled for; `machine_tag` names
both, and a package built elsewhere is refused with an error naming the file and the mismatch.
"""

from __future__ import annotations

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


def shapes_for(height: int, width: int) -> PackageShapes:
    """The dynamic-H/W package where (height, width) fits its range, else a static one for that size."""
    dynamic = PackageShapes()
    return dynamic if dynamic.serves(height, width) else PackageShapes(height=height, width=width)


def example_input(shapes: PackageShapes, fallback_hw: tuple[int, int]) -> torch.Tensor:
    """A (2, 3, H, W) input for export: batch 2 so the batch dimension is not specialised to 1."""
    h, w = fallback_hw if shapes.dynamic_hw else (shapes.height, shapes.width)
    return torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(0))


def dynamic_shapes(shapes: PackageShapes) -> tuple[dict, ...]:
    """torch.export's dynamic_shapes for the pixel_values argument."""
    dims: dict = {0: torch.export.Dim("batch", min=1, max=shapes.max_batch)}
    if shapes.dynamic_hw:
        lo, hi = MIN_SIDE // SIDE_STEP, MAX_SIDE // SIDE_STEP
        dims[2] = SIDE_STEP * torch.export.Dim("h_blocks", min=lo, max=hi)
        dims[3] = SIDE_STEP * torch.export.Dim("w_blocks", min=lo, max=hi)
    return (dims,)


def machine_tag() -> dict[str, str]:
    """What a package is bound to: the torch version and the vector ISA inductor generates code for."""
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    return {"torch": torch.__version__, "vec_isa": str(pick_vec_isa()) or "none"}


def check_machine(entry: dict, folder: Path) -> None:
    """ArtifactError naming the package when it was compiled for another torch version or CPU ISA."""
    here = machine_tag()
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
) -> dict:
    """Export `module` for `shapes` and AOT-compile it to `path` (written atomically); returns its entry."""
    start = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(
            module, (example_input(shapes, crop_hw),), dynamic_shapes=dynamic_shapes(shapes)
        )
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
        **machine_tag(),
    }


def load_package(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The compiled model in `path`; ArtifactError naming the file when it cannot be loaded."""
    try:
        runner = torch._inductor.aoti_load_package(str(path))
    except Exception as exc:  # a corrupt zip, a missing .so, an ABI mismatch: all mean "rebuild"
        raise ArtifactError(
            f"{path}: cannot load the AOTInductor package ({type(exc).__name__}: {str(exc)[:200]}); "
            "delete the artifact folder or re-run optimize to rebuild it"
        ) from None
    return runner

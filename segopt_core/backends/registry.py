"""The backends segopt knows: one declaration each, in one table.

A backend is one module that implements `BackendModule` (`check_available`, `build`, `load`) plus one line
in `BACKENDS` declaring its name, precisions, devices and that module. Everything else (option checks, the
artifact store, the CLI's valid values, the docs' contract) reads this table. The declarations are plain
data so that checking a user's options never imports a backend's libraries; `Backend.module()` imports the
implementation when a variant is built or loaded.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from segopt_core.backends.options import VariantOptions
    from segopt_core.predictor import Predictor
    from segopt_core.variants import CellSpec


class BackendModule(Protocol):
    """What a backend module provides; the store calls these three and nothing else."""

    def check_available(self, options: VariantOptions) -> None:
        """Raise BackendUnavailable (the variant is skipped) naming what this machine lacks."""

    def build(
        self,
        model: nn.Module,
        spec: CellSpec,
        options: VariantOptions,
        folder: Path,
        calib: np.ndarray | None,
    ) -> dict:
        """Write the variant's files into `folder` (a temp folder); return metadata entries for them."""

    def load(
        self, folder: Path, metadata: dict, options: VariantOptions, num_threads: int | None = None
    ) -> Predictor:
        """The artifact in `folder` as a Predictor (float32 (N,3,H,W) in, logits (N,C,H/4,W/4) out)."""


CONTRACT = {
    name: inspect.signature(getattr(BackendModule, name)) for name in ("check_available", "build", "load")
}


@dataclass(frozen=True)
class Backend:
    """One backend's declaration: what it is called, what it implements and where its code lives."""

    name: str
    precisions: tuple[str, ...]
    devices: tuple[str, ...]
    module_name: str
    cuda_precisions: tuple[str, ...] = ()  # precisions that exist on CUDA only: their variants go there

    def __post_init__(self) -> None:
        if not self.precisions or not self.devices:
            raise ValueError(f"backend {self.name!r}: declare at least one precision and one device")
        if not set(self.cuda_precisions) <= set(self.precisions) or (
            self.cuda_precisions and "cuda" not in self.devices
        ):
            raise ValueError(
                f"backend {self.name!r}: cuda_precisions {self.cuda_precisions} must be declared precisions "
                "of a backend that runs on CUDA"
            )

    @property
    def cuda_only(self) -> bool:
        """True when it runs on CUDA only: its variants then need no '-cuda' in their name."""
        return self.devices == ("cuda",)

    def module(self) -> BackendModule:
        """The implementing module, checked against `BackendModule` (TypeError naming what is missing)."""
        module = importlib.import_module(self.module_name)
        return check_module(module, self.name)

    def available(self, options: VariantOptions) -> str | None:
        """None when `options` can be built and run on this machine, else why not (the skip reason)."""
        from segopt_core.backends.errors import BackendUnavailable

        try:
            self.module().check_available(options)
        except BackendUnavailable as exc:
            return str(exc)
        return None


def check_module(module: ModuleType, name: str) -> Any:
    """`module` if it has the contract's three functions with their parameters, else TypeError."""
    problems = []
    for fn_name, wanted in CONTRACT.items():
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            problems.append(f"no {fn_name}()")
            continue
        have = [p for p in inspect.signature(fn).parameters if p != "self"]
        want = [p for p in wanted.parameters if p != "self"]
        if have[: len(want)] != want:
            problems.append(f"{fn_name}({', '.join(have)}) should take ({', '.join(want)})")
    if problems:
        raise TypeError(
            f"backend {name!r} ({module.__name__}) breaks the backend contract: {'; '.join(problems)}"
        )
    return module


_CPU_CUDA = ("cpu", "cuda")
BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        # fp16 is CUDA-only: CPU fp16 kernels are missing or far slower than fp32
        Backend(
            "torch",
            ("fp32", "fp16", "bf16", "int8-dynamic"),
            _CPU_CUDA,
            f"{__package__}.torch_backends",
            cuda_precisions=("fp16",),
        ),
        # every variant is an AOTInductor package; int8-static = PT2E + X86InductorQuantizer (CPU);
        # fp16 (CUDA-only, as for torch) and bf16 on CUDA compile to Triton kernels in a CUDA package
        Backend(
            "torch-compile",
            ("fp32", "fp16", "bf16", "int8-static"),
            _CPU_CUDA,
            f"{__package__}.compile",
            cuda_precisions=("fp16",),
        ),
        Backend(
            "onnxruntime", ("fp32", "fp16", "int8-dynamic", "int8-static"), _CPU_CUDA, f"{__package__}.ort"
        ),
        Backend("tensorrt", ("fp32", "fp16", "int8-static"), ("cuda",), f"{__package__}.tensorrt"),
        # int8-static = NNCF post-training quantization
        Backend("openvino", ("fp32", "bf16", "int8-static"), ("cpu",), f"{__package__}.openvino"),
    )
}


def get_backend(name: str) -> Backend:
    """The declaration of a backend by name; KeyError listing the valid names."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}") from None

"""What to build: `VariantOptions` (backend, precision, folding, calibration, preset) and the default set."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from segopt_core.backends.registry import BACKENDS as REGISTRY
from segopt_core.cpuinfo import cpu_has_any
from segopt_core.errors import OptionError

BACKENDS = tuple(REGISTRY)  # declared, with their precisions and devices, in backends/registry.py
PRECISIONS = ("fp32", "fp16", "bf16", "int8-dynamic", "int8-static")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
PRESETS = ("segformer-safe",)
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class CalibrationOptions:
    """How INT8 static calibration runs: method, how many images, per-channel weights."""

    method: str = "minmax"
    num_images: int = 32
    per_channel: bool = True
    percentile: float = 99.999  # only for method="percentile"; ORT's default

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise OptionError(
                f"calibration method {self.method!r} is unknown; valid: {', '.join(CALIBRATION_METHODS)}"
            )
        if self.num_images < 1:
            raise OptionError(f"calibration num_images must be >= 1, got {self.num_images}")
        if not 50.0 < self.percentile <= 100.0:
            raise OptionError(f"calibration percentile must be in (50, 100], got {self.percentile}")


@dataclass(frozen=True)
class VariantOptions:
    """One optimized variant: backend x precision x graph options; `slug` names it."""

    backend: str = "torch"
    precision: str = "fp32"
    fold_decode_head: bool = False
    calibration: CalibrationOptions | None = None  # set (to the default) automatically for int8-static
    preset: str | None = None
    device: str = "cpu"
    extra: tuple[tuple[str, str], ...] = field(default=())  # free-form build knobs, part of the key

    def __post_init__(self) -> None:
        self._check_choice("backend", self.backend, BACKENDS)
        self._check_choice("precision", self.precision, PRECISIONS)
        self._check_choice("device", self.device, DEVICES)
        backend = REGISTRY[self.backend]
        if self.precision not in backend.precisions:
            raise OptionError(
                f"backend {self.backend!r} does not implement precision {self.precision!r}; "
                f"valid for it: {', '.join(backend.precisions)}"
            )
        if self.preset is not None:
            self._check_choice("preset", self.preset, PRESETS)
            if self.backend != "onnxruntime" or not self.precision.startswith("int8"):
                raise OptionError(
                    "preset 'segformer-safe' applies to --backend onnxruntime with an int8 precision"
                )
        if self.precision == "int8-static" and self.calibration is None:
            object.__setattr__(self, "calibration", CalibrationOptions())
        if self.precision != "int8-static" and self.calibration is not None:
            raise OptionError(f"calibration options only apply to int8-static, not {self.precision!r}")
        if backend.cuda_only or self.precision in backend.cuda_precisions:
            object.__setattr__(self, "device", "cuda")  # these exist only on CUDA
        if self.device not in backend.devices:
            raise OptionError(
                f"backend {self.backend!r} runs on {', '.join(backend.devices)} only, not {self.device!r}"
            )

    @staticmethod
    def _check_choice(what: str, value: object, valid: tuple[str, ...]) -> None:
        if value not in valid:
            raise OptionError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")

    @property
    def slug(self) -> str:
        """Human-readable variant name, e.g. 'onnxruntime-int8-static-segformer-safe-folded'."""
        parts = [self.backend, self.precision]
        if self.preset:
            parts.append(self.preset)
        cal = self.calibration
        if cal is not None and cal.method != "minmax":
            parts.append(cal.method)
        if cal is not None and not cal.per_channel:
            parts.append("per-tensor")
        if self.fold_decode_head:
            parts.append("folded")
        if self.device == "cuda" and not REGISTRY[self.backend].cuda_only:
            parts.append("cuda")  # apart from the same variant on the CPU (e.g. the torch-fp32 reference)
        return "-".join(parts)

    def to_dict(self) -> dict:
        """JSON-able form (stored in artifact metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VariantOptions:
        """Inverse of `to_dict`."""
        data = dict(data)
        cal = data.pop("calibration", None)
        extra = tuple(tuple(kv) for kv in data.pop("extra", ()))
        return cls(**data, calibration=CalibrationOptions(**cal) if cal else None, extra=extra)

    def digest(self) -> str:
        """Stable short hash of every option (part of the artifact folder name)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    import torch

    if torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX"):  # not all builds report these
        return True
    return cpu_has_any("avx512_bf16", "amx_bf16")


def cpu_has_int8_dot() -> bool:
    """True when the CPU has int8 dot-product instructions (VNNI or AMX), where INT8 beats fp32 compute."""
    return cpu_has_any("avx512_vnni", "avx_vnni", "amx_int8")


def pt2e_installed() -> bool:
    """True when torchao (PT2E quantization for torch.compile) can be imported."""
    import importlib.util

    return importlib.util.find_spec("torchao") is not None


def openvino_installed() -> bool:
    """True when `openvino` (the `openvino` extra) can be imported."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


# --- presets: named functions, one comment per non-obvious flag --------------------------------------


def segformer_safe_int8(calibration: CalibrationOptions | None = None) -> VariantOptions:
    """ORT INT8 static QDQ keeping LayerNorm, Softmax, residual Adds and the classifier in float."""
    return VariantOptions(
        backend="onnxruntime",
        precision="int8-static",
        preset="segformer-safe",  # these ops carry outliers that per-tensor int8 activations clip
        fold_decode_head=True,  # exact, and fewer int8 ops in the head means less error
        calibration=calibration or CalibrationOptions(method="minmax", per_channel=True),
    )


# The eager fp32 model (unfolded) every speedup and accuracy ratio is relative to.
REFERENCE_VARIANT = VariantOptions("torch", "fp32")


def default_variants(cuda: bool, bf16: bool | None = None, pt2e: bool | None = None) -> list[VariantOptions]:
    """What `optimize-all` builds by default on this machine.

    bf16 only where the CPU has it natively; PT2E INT8 (torch.compile) only where torchao is installed and
    the CPU has int8 dot products: on plain AVX2 it measured slower than torch.compile fp32.
    """
    bf16 = cpu_supports_bf16() if bf16 is None else bf16
    pt2e = (pt2e_installed() and cpu_has_int8_dot()) if pt2e is None else pt2e
    variants = [
        REFERENCE_VARIANT,
        VariantOptions("torch", "fp32", fold_decode_head=True),
        VariantOptions("torch", "int8-dynamic", fold_decode_head=True),
        VariantOptions("torch-compile", "fp32", fold_decode_head=True),
        VariantOptions("onnxruntime", "fp32"),
        VariantOptions("onnxruntime", "fp32", fold_decode_head=True),
        VariantOptions("onnxruntime", "int8-dynamic", fold_decode_head=True),
        segformer_safe_int8(),
    ]
    if bf16:
        variants += [
            VariantOptions("torch", "bf16", fold_decode_head=True),
            VariantOptions("torch-compile", "bf16", fold_decode_head=True),
        ]
    if pt2e:
        variants.append(VariantOptions("torch-compile", "int8-static", fold_decode_head=True))
    if cuda:
        variants += [
            VariantOptions("torch", "fp16", fold_decode_head=True),
            # AOTInductor CUDA packages: what a machine without TensorRT ships
            VariantOptions("torch-compile", "fp16", fold_decode_head=True),
            VariantOptions("torch-compile", "bf16", fold_decode_head=True, device="cuda"),
            VariantOptions("onnxruntime", "fp16", fold_decode_head=True, device="cuda"),
            VariantOptions("tensorrt", "fp16", fold_decode_head=True),
            VariantOptions("tensorrt", "int8-static", fold_decode_head=True),
        ]
    return variants + openvino_variants(bf16)


def openvino_variants(bf16: bool) -> list[VariantOptions]:
    """OpenVINO (folded) where it is installed: fp32, bf16 where native, NNCF INT8 where VNNI/AMX."""
    if not openvino_installed():
        return []
    variants = [VariantOptions("openvino", "fp32", fold_decode_head=True)]
    if bf16:
        variants.append(VariantOptions("openvino", "bf16", fold_decode_head=True))
    if cpu_has_int8_dot():
        variants.append(VariantOptions("openvino", "int8-static", fold_decode_head=True))
    return variants

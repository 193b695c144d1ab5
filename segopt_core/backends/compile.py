"""torch.compile (inductor) variants: fp32 and bf16 autocast, `freezing` on CPU; INT8 via PT2E (torchao).

The artifact stores the fp32 source weights + options; compilation happens at load, lazily on the first
call of each input shape (what the benchmark reports as first-call time).  Inductor's `freezing` is a
process-wide setting: loading a CPU variant turns it on (it only affects inference-mode graphs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segopt_core.backends import torch_backends
from segopt_core.backends.errors import BackendUnavailable
from segopt_core.backends.options import VariantOptions
from segopt_core.backends.source import save_source
from segopt_core.backends.torch_backends import TorchVariantPredictor, prepare_model
from segopt_core.variants import VariantSpec

CALIB_FILE = "calibration.safetensors"


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


def check_available(options: VariantOptions) -> dict:
    """BackendUnavailable where this variant cannot run; notes otherwise."""
    notes = torch_backends.check_precision_available(options)
    if options.precision == "int8-static":
        pt2e_api()
    return notes


def build(model: nn.Module, spec: VariantSpec, options: VariantOptions, folder: Path, calib=None) -> dict:
    """Write the source weights (and the PT2E calibration tensor); compilation happens at load."""
    from safetensors.torch import save_file

    notes = check_available(options)
    meta = save_source(model, folder)
    meta["applied_at_load"] = (["fold_decode_head"] if options.fold_decode_head else []) + _compile_steps(
        options
    )
    if calib is not None:
        save_file({"images": torch.from_numpy(np.ascontiguousarray(calib))}, str(folder / CALIB_FILE))
        meta["calibration_file"] = CALIB_FILE
    return {**meta, **notes}


def _compile_steps(options: VariantOptions) -> list[str]:
    """What load does on top of the source weights, for the metadata."""
    steps = []
    if options.precision == "int8-static":
        steps.append(
            "per input size: torch.export + prepare_pt2e(X86InductorQuantizer)"
            " + calibration (resized) + convert_pt2e"
        )
    if options.precision == "bf16":
        steps.append("torch.autocast(cpu, bfloat16)")
    if options.device == "cpu":
        steps.append("torch._inductor.config.freezing = True")
    return [*steps, "torch.compile(backend='inductor', dynamic=False)"]


def quantize_pt2e(model: nn.Module, calib: torch.Tensor) -> nn.Module:
    """PT2E static INT8 with the x86 inductor quantizer for calib's (H, W), calibrated image by image."""
    prepare_pt2e, convert_pt2e, quantizer_cls, default_config = pt2e_api()
    batch = {0: torch.export.Dim.AUTO}  # H and W stay static: SegFormer's strides add guards that
    exported = torch.export.export(model, (calib[:2],), dynamic_shapes=(batch,)).module()  # small inputs fail
    prepared = prepare_pt2e(exported, quantizer_cls().set_global(default_config()))
    with torch.no_grad():
        for image in calib:
            prepared(image[None])
    return convert_pt2e(prepared)


class Pt2eInt8Model(nn.Module):
    """Quantizes and compiles the fp32 model once per input (H, W), calibrating on images resized to it."""

    def __init__(self, model: nn.Module, calib: torch.Tensor) -> None:
        super().__init__()
        self.model, self.calib = model, calib
        self.per_size: dict[tuple[int, int], nn.Module] = {}

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size = tuple(pixel_values.shape[-2:])
        if size not in self.per_size:
            calib = F.interpolate(self.calib, size=size, mode="bilinear", align_corners=False)
            self.per_size[size] = _inductor(quantize_pt2e(self.model, calib))
        return self.per_size[size](pixel_values)


def load(
    folder: Path, metadata: dict, options: VariantOptions, num_threads: int | None = None
) -> TorchVariantPredictor:
    """Re-create the variant and wrap it in torch.compile (compiles on the first call per shape)."""
    check_available(options)
    if num_threads:
        torch.set_num_threads(num_threads)
    model, _ = prepare_model(folder, metadata, options)
    model = model.to(options.device).eval()
    if options.device == "cpu":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # constant-fold weights into the graph (inference only)
    if options.precision == "int8-static":
        from safetensors.torch import load_file

        calib = load_file(str(folder / metadata["calibration_file"]))["images"]
        compiled = Pt2eInt8Model(model, calib)
    else:
        compiled = _inductor(model)
    autocast = torch.bfloat16 if options.precision == "bf16" else None
    return TorchVariantPredictor(compiled, options.slug, options.precision, options.device, autocast)


def _inductor(model: nn.Module) -> nn.Module:
    """torch.compile with inductor, one static graph per input shape."""
    return torch.compile(model, backend="inductor", dynamic=False)

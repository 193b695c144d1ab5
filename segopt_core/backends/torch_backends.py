"""PyTorch eager variants: fp32, bf16 autocast (CPU), fp16 (CUDA), dynamic INT8 (Linear layers only).

The artifact stores the fp32 source weights (safetensors) and the options; the variant is re-created
deterministically at load (folding, quantize_dynamic), so nothing is ever pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segopt_core.backends import attention
from segopt_core.backends.errors import BackendUnavailable
from segopt_core.backends.folding import fold_decode_head
from segopt_core.backends.options import VariantOptions, cpu_supports_bf16
from segopt_core.backends.quiet import quiet_library_warnings
from segopt_core.backends.source import load_source, save_source, torch_device
from segopt_core.variants import CellSpec

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TorchVariantPredictor:
    """A torch module behind the Predictor interface, with optional autocast."""

    model: nn.Module
    name: str
    precision: str
    device: str = "cpu"
    autocast_dtype: torch.dtype | None = None
    notes: dict = field(default_factory=dict)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with (
            torch.inference_mode(),
            torch.autocast(
                device_type=torch.device(self.device).type,
                dtype=self.autocast_dtype or torch.float32,
                enabled=self.autocast_dtype is not None,
            ),
        ):
            out = self.model(x)
        return out.float().cpu().numpy()


def check_available(options: VariantOptions) -> None:
    """BackendUnavailable where this variant cannot run here (no CUDA, fp16 on the CPU)."""
    availability_notes(options)


def availability_notes(options: VariantOptions) -> dict:
    """Raise BackendUnavailable for impossible combinations; return notes about slow/emulated ones."""
    torch_device(options.device)  # CUDA present when asked for
    if options.precision == "fp16" and options.device != "cuda":
        raise BackendUnavailable("torch fp16 runs on CUDA only (CPU fp16 kernels are missing or very slow)")
    if options.precision == "bf16" and options.device == "cpu" and not cpu_supports_bf16():
        return {
            "bf16_native": False,
            "bf16_note": "CPU has no AVX512-BF16/AMX: bf16 is emulated and slow here",
        }
    return {"bf16_native": True} if options.precision == "bf16" else {}


def build(model: nn.Module, spec: CellSpec, options: VariantOptions, folder: Path, calib=None) -> dict:
    """Write the source weights; the variant itself is re-created by `load`."""
    notes = availability_notes(options)
    if options.precision == "int8-dynamic":
        notes.update(dynamic_int8_report(fold_decode_head(model) if options.fold_decode_head else model))
    return {**save_source(model, folder), **notes, "applied_at_load": applied_at_load(options)}


def applied_at_load(options: VariantOptions) -> list[str]:
    """The deterministic transforms `load` re-applies to the stored fp32 weights."""
    steps = ["fold_decode_head"] if options.fold_decode_head else []
    if options.precision == "int8-dynamic":
        steps.append("torch.ao.quantization.quantize_dynamic({nn.Linear}, qint8)")
    elif options.precision in ("bf16", "fp16"):
        steps.append(f"torch.autocast({options.device}, {options.precision})")
    return steps + attention.build_steps(options.precision, options.device)


def dynamic_int8_report(model: nn.Module) -> dict:
    """Which layers dynamic INT8 quantizes (every nn.Linear) and which stay fp32 (every Conv2d)."""
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return {
        "quantized_layers": linear,
        "float_layers": convs,
        "quantization_note": f"{len(linear)} nn.Linear layers int8 (dynamic activations); "
        f"{len(convs)} Conv2d layers stay fp32 (dynamic quantization supports Linear only)",
    }


def quantize_dynamic_linear(model: nn.Module) -> tuple[nn.Module, dict]:
    """Dynamic INT8 of every nn.Linear (weights int8, activations quantized per call)."""
    report = dynamic_int8_report(model)
    with quiet_library_warnings():
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8), report


def prepare_model(folder: Path, metadata: dict, options: VariantOptions) -> tuple[nn.Module, CellSpec]:
    """The stored source model with the variant's graph transforms (folding) applied."""
    model, spec = load_source(folder, metadata)
    if options.fold_decode_head:
        model = fold_decode_head(model)
    return model, spec


def load(
    folder: Path, metadata: dict, options: VariantOptions, num_threads: int | None = None
) -> TorchVariantPredictor:
    """Re-create the eager variant from an artifact folder."""
    availability_notes(options)
    if num_threads:
        torch.set_num_threads(num_threads)
    model, _ = prepare_model(folder, metadata, options)
    if attention.recorded(metadata.get("applied_at_load", [])):  # artifacts built before it keep SDPA
        model = attention.with_matmul_attention(model)
    notes = {}
    if options.precision == "int8-dynamic":
        model, notes = quantize_dynamic_linear(model)
    model = model.to(options.device).eval()
    return TorchVariantPredictor(
        model, options.slug, options.precision, options.device, AUTOCAST.get(options.precision), notes
    )

"""OpenVINO variants (CPU): f32, bf16, INT8 static via NNCF; stored as OpenVINO IR (model.xml + model.bin).

Built from the (optionally folded) torch model with `ov.convert_model`, with a dynamic batch, height and
width; loaded with the LATENCY performance hint. The precision is pinned with INFERENCE_PRECISION_HINT, so
an fp32 artifact never silently runs in bf16 on a CPU where bf16 is OpenVINO's default.
"""

from __future__ import annotations

import importlib.metadata
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segopt_core.backends.errors import ArtifactError, BackendUnavailable
from segopt_core.backends.folding import fold_decode_head
from segopt_core.backends.options import VariantOptions, openvino_installed  # noqa: F401 (re-export)
from segopt_core.backends.quiet import quiet_library_warnings
from segopt_core.variants import CellSpec

MODEL_FILE = "model.xml"
INPUT_NAME = "pixel_values"
# INFERENCE_PRECISION_HINT per segopt precision; None = OpenVINO's default (bf16 where the CPU has it,
# f32 elsewhere) for the layers NNCF left in float.
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8-static": None}
INT8_FLOAT_OPS = ["GroupConvolution"]  # see quantize_int8
INSTALL_HINT = "install segopt[openvino] (pip install 'segopt[openvino]' -c constraints.txt)"


def openvino():
    """The `openvino` module, or BackendUnavailable saying how to install it."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise BackendUnavailable(f"OpenVINO is not installed ({exc}): {INSTALL_HINT}") from None
    return ov


def cpu_capabilities() -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of the CPU device (e.g. FP32, BF16, INT8)."""
    return list(openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def check_available(options: VariantOptions) -> None:
    """BackendUnavailable where this variant cannot run here (no openvino, no CUDA plugin, no native bf16)."""
    openvino()
    if options.device != "cpu":
        raise BackendUnavailable("segopt's OpenVINO backend runs on the CPU device only (--device cpu)")
    if options.precision == "bf16" and "BF16" not in cpu_capabilities():
        raise BackendUnavailable(
            "OpenVINO bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX); "
            f"this one offers {', '.join(cpu_capabilities())}"
        )


@dataclass
class OpenVinoPredictor:
    """A compiled OpenVINO model behind the Predictor interface (one infer request, calls serialized)."""

    compiled: object
    name: str
    precision: str
    device: str = "cpu"

    def __post_init__(self) -> None:
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one InferRequest must not run in two threads at once

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            self._request.infer({0: x})
            return np.array(self._request.get_output_tensor(0).data, dtype=np.float32, copy=True)


# --- build ---------------------------------------------------------------------------------------------


def convert(model: nn.Module, spec: CellSpec):
    """`ov.convert_model` of a LogitsModel with dynamic batch, height and width (traced at batch 2)."""
    ov = openvino()
    h, w = spec.crop_size
    example = torch.zeros(2, 3, h, w)
    with torch.no_grad(), quiet_library_warnings(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape-dependent Python in HF's code
        ov_model = ov.convert_model(
            model.eval(), example_input=example, input=[ov.PartialShape([-1, 3, -1, -1])]
        )
    ov_model.inputs[0].get_tensor().set_names({INPUT_NAME})
    return ov_model


def quantize_int8(ov_model, calib: np.ndarray):
    """NNCF post-training INT8 (ModelType.TRANSFORMER) calibrated on `calib`; depthwise convs stay float."""
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailable(f"OpenVINO INT8 needs NNCF ({exc}): {INSTALL_HINT}") from None
    from segopt_core.logs import route_library_logging

    route_library_logging()  # NNCF set up its own INFO handler and progress bars on import
    dataset = nncf.Dataset([img[None] for img in calib])
    return nncf.quantize(
        ov_model,
        dataset,
        model_type=nncf.ModelType.TRANSFORMER,  # float softmax/LayerNorm, SmoothQuant for the linears
        subset_size=len(calib),
        # NNCF 3.4 quantizes the depthwise conv's input (fc1's output) with scales shaped along the token
        # axis of the calibration size: any other H/W then fails in the CPU plugin. Keep them float.
        ignored_scope=nncf.IgnoredScope(types=INT8_FLOAT_OPS, validate=False),
    )


def build(model: nn.Module, spec: CellSpec, options: VariantOptions, folder: Path, calib=None) -> dict:
    """Convert (folded if asked), quantize for int8-static, and save folder/model.xml + model.bin."""
    check_available(options)
    ov = openvino()
    graph = fold_decode_head(model) if options.fold_decode_head else model
    ov_model = convert(graph, spec)
    meta = {"model_file": MODEL_FILE, "export": {"exporter": "openvino.convert_model", "dynamic": "N,H,W"}}
    if options.precision == "int8-static":
        ov_model = quantize_int8(ov_model, calib)
        meta["quantization"] = {
            "tool": "nncf.quantize",
            "model_type": "TRANSFORMER",
            "float_op_types": INT8_FLOAT_OPS,
            # NNCF picks its own range estimators; segopt's calibration method/per_channel apply to ORT only
            "calibration_method": "nncf default",
        }
    # compress_to_fp16=False: save_model's default halves the weights, which fp32 artifacts must not do.
    ov.save_model(ov_model, str(folder / MODEL_FILE), compress_to_fp16=False)
    meta["openvino_versions"] = {
        name: _version(name) for name in ("openvino", "nncf") if _version(name) is not None
    }
    meta["bf16_native"] = "BF16" in cpu_capabilities()
    return meta


def _version(distribution: str) -> str | None:
    """Installed version of a distribution, None when absent."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# --- load ----------------------------------------------------------------------------------------------


def compile_config(options: VariantOptions, num_threads: int | None) -> dict:
    """CPU plugin properties: LATENCY hint, the precision hint of the variant, thread count."""
    config = {"PERFORMANCE_HINT": "LATENCY"}
    hint = PRECISION_HINTS[options.precision]
    if hint is not None:
        config["INFERENCE_PRECISION_HINT"] = hint
    if num_threads:
        config["INFERENCE_NUM_THREADS"] = int(num_threads)
    return config


def load(
    folder: Path, metadata: dict, options: VariantOptions, num_threads: int | None = None
) -> OpenVinoPredictor:
    """Read the IR (model.xml + its weights model.bin) from an artifact folder and compile it for the CPU;
    its classes and input are checked against the metadata."""
    check_available(options)
    ov = openvino()
    path = folder / metadata["model_file"]
    weights = path.with_suffix(".bin")
    core = ov.Core()
    try:
        model = core.read_model(str(path), str(weights))
    except RuntimeError as exc:
        reason = _reason(exc)
        if "bin" in reason.lower() or "weights" in reason.lower():  # the .bin, not the .xml, is wrong
            raise ArtifactError(f"{weights}: OpenVINO cannot read the IR's weights ({reason}): truncated, or "
                                f"not {path.name}'s; delete {folder} to rebuild it") from None  # fmt: skip
        raise ArtifactError(
            f"{path}: OpenVINO cannot read this IR ({reason}); delete {folder} to rebuild it"
        ) from None
    _check_io(model, path, metadata)
    try:
        compiled = core.compile_model(model, "CPU", compile_config(options, num_threads))
    except RuntimeError as exc:
        raise ArtifactError(
            f"{path}: OpenVINO cannot compile this IR ({_reason(exc)}); delete {folder} to rebuild it"
        ) from None
    return OpenVinoPredictor(compiled, options.slug, options.precision, "cpu")


def _reason(exc: BaseException) -> str:
    """OpenVINO's cause, without its "Exception from <file>" and "Check '...' failed at" lines."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (causes or lines or [type(exc).__name__])[-1][:300]


def _check_io(model, path: Path, metadata: dict) -> None:
    """The IR's output classes and input (N, 3, H, W) float32 against the artifact's metadata."""
    from segopt_core.backends.integrity import check_classes, check_input

    inputs, outputs = model.inputs, model.outputs
    classes = outputs[0].get_partial_shape()[1] if len(outputs) == 1 else None
    channels = inputs[0].get_partial_shape()[1] if len(inputs) == 1 else None
    check_classes(path, classes.get_length() if classes is not None and classes.is_static else None, metadata)
    check_input(
        path,
        channels.get_length() if channels is not None and channels.is_static else None,
        inputs[0].get_element_type().to_dtype().name if len(inputs) == 1 else "?",
    )


def default_precision() -> str:
    """The segopt precision OpenVINO picks on this CPU without a hint ('bf16' or 'fp32')."""
    core = openvino().Core()
    hint = str(core.get_property("CPU", "INFERENCE_PRECISION_HINT")).lower()
    return "bf16" if "bf16" in hint or "bfloat16" in hint else "fp32"

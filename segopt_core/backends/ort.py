"""ONNX Runtime variants: fp32, fp16 (mainly CUDA EP), INT8 dynamic, INT8 static QDQ (+ SegFormer-safe)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from segopt_core.backends.errors import ArtifactError, BackendUnavailable, OnnxModelError
from segopt_core.backends.folding import fold_decode_head
from segopt_core.backends.onnx_export import OPSET, check_segformer_io, export_onnx, segformer_io
from segopt_core.backends.options import VariantOptions
from segopt_core.variants import CellSpec

MODEL_FILE = "model.onnx"
# Kept in fp32 by the fp16 conversion: normalisation/softmax statistics overflow or lose precision in fp16,
# and Resize keeps the upsampled logits/features exact.
FP16_BLOCKED_OPS = ["LayerNormalization", "Softmax", "Resize", "ReduceMean", "Pow", "Sqrt", "Erf"]
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


@dataclass
class OrtPredictor:
    """An onnxruntime InferenceSession behind the Predictor interface."""

    session: object
    name: str
    precision: str
    device: str
    input_name: str = "pixel_values"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32)


def import_onnxruntime():
    """The onnxruntime module; BackendUnavailable saying which extra to install when it is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable(
            "ONNX Runtime is not installed: install segopt[cpu] or segopt[gpu] (never both)"
        ) from None
    return onnxruntime


def require_providers(wanted: list[str]) -> list[str]:
    """The providers to use; BackendUnavailable listing the available ones when the first is missing."""
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    if wanted[0] not in available:
        raise BackendUnavailable(
            f"onnxruntime provider {wanted[0]} is not available (available: {', '.join(available)}); "
            "install onnxruntime-gpu (pip install 'segopt[gpu]', never together with onnxruntime) "
            "on a CUDA machine"
        )
    return [p for p in wanted if p in available]


def check_available(options: VariantOptions) -> None:
    """BackendUnavailable where ONNX Runtime or the device's execution provider is missing."""
    require_providers(PROVIDERS[options.device])


def make_session(path: Path, device: str = "cpu", num_threads: int | None = None):
    """An InferenceSession with all graph optimisations; OnnxModelError for unreadable/incompatible files."""
    ort = import_onnxruntime()
    providers = require_providers(PROVIDERS[device])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads:
        opts.intra_op_num_threads = num_threads
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # ORT raises Fail/InvalidGraph/NotImplemented as RuntimeError subclasses
        msg = str(exc).splitlines()[0][:400]
        if "NOT_IMPLEMENTED" in msg or "Could not find an implementation" in msg:
            raise BackendUnavailable(
                f"{path}: onnxruntime {providers[0]} cannot run this graph ({msg})"
            ) from None
        raise OnnxModelError(
            f"{path}: onnxruntime cannot load it ({msg}); truncated or not an ONNX model?"
        ) from None


def load_onnx_predictor(
    path: str | Path, device: str = "cpu", num_threads: int | None = None
) -> OrtPredictor:
    """Any SegFormer ONNX file as a Predictor (checks its inputs/outputs first)."""
    path = Path(path)
    input_name, _ = check_segformer_io(path)
    session = make_session(path, device, num_threads)
    return OrtPredictor(session, f"onnxruntime:{path.name}", "fp32", device, input_name)


# --- build ---------------------------------------------------------------------------------------------


def build(model: nn.Module, spec: CellSpec, options: VariantOptions, folder: Path, calib=None) -> dict:
    """Export (folded if asked), convert/quantize, and write folder/model.onnx."""
    check_available(options)  # before the export: a missing runtime is a skip
    graph = fold_decode_head(model) if options.fold_decode_head else model
    fp32_path = folder / "model.fp32.onnx"
    opset = int(dict(options.extra).get("opset", OPSET))  # e.g. extra=(("opset", "18"),)
    meta = {"model_file": MODEL_FILE, "export": export_onnx(graph, spec, fp32_path, opset=opset)}
    final = folder / MODEL_FILE
    if options.precision == "fp32":
        os.replace(fp32_path, final)
        return meta
    if options.precision == "fp16":
        meta.update(convert_fp16(fp32_path, final))
    elif options.precision == "int8-dynamic":
        meta.update(quantize_int8_dynamic(fp32_path, final, options))
    else:
        meta.update(quantize_int8_static(fp32_path, final, options, calib))
    fp32_path.unlink()
    return meta


def convert_fp16(src: Path, dst: Path) -> dict:
    """fp16 weights/activations except FP16_BLOCKED_OPS; inputs and outputs stay float32."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    blocked = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP16_BLOCKED_OPS))
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=blocked)
    onnx.save(model, str(dst))
    return {"fp16_blocked_ops": FP16_BLOCKED_OPS, "converter": "onnxruntime.transformers.float16"}


def residual_adds(model) -> list[str]:
    """Names of Add nodes whose inputs are both activations (residual/skip sums, not bias adds)."""
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type == "Add" and not (set(n.input) & consts)]


def classifier_nodes(model) -> list[str]:
    """The node(s) producing the graph output through the final 1x1 classifier conv."""
    out = model.graph.output[0].name
    producers = [n for n in model.graph.node if out in n.output]
    return [n.name for n in producers if n.op_type in ("Conv", "MatMul", "Gemm", "Add")]


def segformer_safe_exclusions(path: Path) -> list[str]:
    """Nodes the SegFormer-safe preset keeps in float: LayerNorm, Softmax, residual Adds, classifier."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    norm_softmax = [n.name for n in model.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
    return sorted(set(norm_softmax + residual_adds(model) + classifier_nodes(model)))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the ORT quantizer's root-logger warnings and histogram prints (results go to metadata)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def preprocess_for_quantization(src: Path) -> dict:
    """ORT's quant_pre_process in place (shape inference + graph cleanup: drops Identity/Constant chains)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = src.with_name(src.stem + ".pre.onnx")
    try:
        with _quiet():
            quant_pre_process(str(src), str(out), skip_symbolic_shape=False)
    except Exception as exc:  # optional step: quantization still works on the raw export
        out.unlink(missing_ok=True)
        return {"quant_pre_process": f"skipped ({exc.__class__.__name__}: {str(exc)[:200]})"}
    os.replace(out, src)
    return {"quant_pre_process": "applied"}


def _ensure_node_names(src: Path) -> None:
    """Give unnamed nodes unique names (nodes_to_exclude works by name)."""
    import onnx

    model = onnx.load(str(src))
    if all(n.name for n in model.graph.node):
        return
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{i}"
    onnx.save(model, str(src))


def quantize_int8_dynamic(src: Path, dst: Path, options: VariantOptions) -> dict:
    """Dynamic INT8 of MatMul weights (ORT CPU has no fast dynamic Conv); preset exclusions honoured."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    pre = preprocess_for_quantization(src)
    _ensure_node_names(src)
    excluded = segformer_safe_exclusions(src) if options.preset else []
    with _quiet():
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=[
                "MatMul"
            ],  # Conv would become ConvInteger: slow/unsupported with int8 on CPU EP
            nodes_to_exclude=excluded,
        )
    return {
        **pre,
        "quantized_op_types": ["MatMul"],
        "excluded_nodes": excluded,
        "num_excluded_nodes": len(excluded),
    }


class _Reader:
    """CalibrationDataReader over preprocessed (N,3,H,W) images, one image per batch."""

    def __init__(self, batch: np.ndarray, input_name: str):
        self._items = iter([{input_name: img[None]} for img in batch])

    def get_next(self) -> dict | None:
        return next(self._items, None)


def quantize_int8_static(src: Path, dst: Path, options: VariantOptions, calib: np.ndarray) -> dict:
    """INT8 static QDQ (uint8 activations, int8 weights) calibrated on `calib`; preset exclusions honoured."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    cal = options.calibration
    pre = preprocess_for_quantization(src)
    _ensure_node_names(src)
    excluded = segformer_safe_exclusions(src) if options.preset else []
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy}.get(
        cal.method, CalibrationMethod.Percentile
    )
    reader = type("SegformerCalibrationReader", (_Reader, CalibrationDataReader), {})(calib, "pixel_values")
    with _quiet():
        quantize_static(
            str(src),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,  # asymmetric uint8 activations: ORT CPU's fast path (VNNI/AVX2)
            weight_type=QuantType.QInt8,
            per_channel=cal.per_channel,
            calibrate_method=method,
            nodes_to_exclude=excluded,
            extra_options={"CalibPercentile": cal.percentile},
        )
    return {**pre, "quant_format": "QDQ", "excluded_nodes": excluded, "num_excluded_nodes": len(excluded)}


# --- load ----------------------------------------------------------------------------------------------


def load(
    folder: Path, metadata: dict, options: VariantOptions, num_threads: int | None = None
) -> OrtPredictor:
    """An OrtPredictor for an artifact folder (its classes, input and external data checked first)."""
    from segopt_core.backends.integrity import check_classes, check_input, verify_loaded_files

    path = folder / metadata["model_file"]
    try:
        io = segformer_io(path)
    except OnnxModelError as exc:
        raise ArtifactError(f"{exc}; delete {folder} to rebuild it") from None
    check_classes(path, io["classes"], metadata)
    check_input(path, 3, io["input_type"])
    verify_loaded_files(folder, metadata, io["external"])  # ONNX Runtime would read these too
    session = make_session(path, options.device, num_threads)
    return OrtPredictor(session, options.slug, options.precision, options.device, io["input"])

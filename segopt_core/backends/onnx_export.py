"""ONNX export of a SegFormer LogitsModel with dynamic batch/height/width, checked and validated.

Exporter choice: the TorchScript exporter (`dynamo=False`) with `dynamic_axes`.  On torch 2.13 it exports
SegFormer in ~2 s with named dynamic dims and matches torch to ~1e-9; the dynamo exporter also works but
took ~50 s for the tiny test model and needs an example batch >= 2 to keep the batch dim dynamic.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from segopt_core.backends.errors import OnnxModelError
from segopt_core.variants import CellSpec

OPSET = 17  # first opset with LayerNormalization as one op (ORT fuses it; fp16 block lists can name it)
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "logits"
DYNAMIC_AXES = {
    INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
    OUTPUT_NAME: {0: "batch", 2: "height_4", 3: "width_4"},
}


def export_shape(spec: CellSpec) -> tuple[int, int, int, int]:
    """The example input used for export: batch 2 at the cell's crop size."""
    return (2, 3, *spec.crop_size)


def export_onnx(model: nn.Module, spec: CellSpec, path: Path, opset: int = OPSET) -> dict:
    """Export, run onnx.checker (full_check) and return what the metadata records."""
    example = torch.randn(*export_shape(spec))
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about python-int shapes are expected and harmless
        torch.onnx.export(
            model.float().eval().cpu(),
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=DYNAMIC_AXES,
            do_constant_folding=True,
        )
    check_onnx(path)
    return {"exporter": "torchscript (dynamo=False)", "opset": opset, "export_shape": list(example.shape)}


def check_onnx(path: Path) -> None:
    """onnx.checker with full_check (shape inference too); OnnxModelError naming the file on failure."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # checker raises ValidationError / InferenceError / DecodeError
        raise OnnxModelError(f"{path}: ONNX check failed ({str(exc).splitlines()[0][:300]})") from None


def _rank_and_dims(value_info) -> list:
    """Dims of a graph input/output (ints or symbolic names)."""
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


def check_segformer_io(path: Path) -> tuple[str, str]:
    """(input name, output name) of a SegFormer-like ONNX file: one (N,3,H,W) input, one rank-4 output."""
    io = segformer_io(path)
    return io["input"], io["output"]


def segformer_io(path: Path) -> dict:
    """What an artifact checks a SegFormer-like ONNX file against: input and output names, output classes
    (int, or a name when symbolic), the input's element type and the external data files it would read."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise OnnxModelError(
            f"{path}: not a readable ONNX file ({exc.__class__.__name__}: {exc}); truncated?"
        ) from None
    init_names = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init_names]
    outputs = list(model.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise OnnxModelError(
            f"{path}: expected 1 input (pixel_values) and 1 output (logits), found inputs "
            f"{[i.name for i in inputs]} outputs {[o.name for o in outputs]}; export with `segopt optimize`"
        )
    in_dims, out_dims = _rank_and_dims(inputs[0]), _rank_and_dims(outputs[0])
    if len(in_dims) != 4 or in_dims[1] not in (3, "", "channels") or len(out_dims) != 4:
        raise OnnxModelError(
            f"{path}: input {inputs[0].name} has dims {in_dims}, output {outputs[0].name} dims {out_dims}; "
            "a SegFormer export takes (N,3,H,W) and returns (N,C,H/4,W/4)"
        )
    elem_type = onnx.helper.tensor_dtype_to_np_dtype(inputs[0].type.tensor_type.elem_type)
    external = [
        entry.value
        for tensor in model.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    ]
    return {
        "input": inputs[0].name,
        "output": outputs[0].name,
        "classes": out_dims[1],
        "input_type": str(elem_type),
        "external": sorted(set(external)),
    }

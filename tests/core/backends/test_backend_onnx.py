"""ONNX export: dynamic batch/height/width, checker, clear errors for files that are not SegFormer exports."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from segopt_core.backends import OnnxModelError
from segopt_core.backends.onnx_export import check_segformer_io, export_onnx
from segopt_core.backends.ort import load_onnx_predictor


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model, tiny_spec):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    info = export_onnx(tiny_model, tiny_spec, path)
    return path, info


def test_export_is_checked_and_dynamic(exported):
    path, info = exported
    assert info["opset"] >= 17 and info["export_shape"] == [2, 3, 64, 64]
    dims = [d.dim_param for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "", "height", "width"]


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (3, 3, 96, 64), (1, 3, 48, 80)])
def test_dynamic_shapes_match_torch(exported, tiny_model, shape):
    predictor = load_onnx_predictor(exported[0])
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    with torch.inference_mode():
        ref = tiny_model(x).numpy()
    out = predictor(x.numpy())
    assert out.shape == ref.shape == (shape[0], 150, shape[2] // 4, shape[3] // 4)
    np.testing.assert_allclose(out, ref, atol=1e-4)


def _save_graph(path, inputs, outputs, nodes):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_rejects_onnx_with_wrong_inputs(tmp_path):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3, 8, 8])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    path = _save_graph(tmp_path / "two.onnx", [a, b], [y], [helper.make_node("Add", ["a", "b"], ["y"])])
    with pytest.raises(OnnxModelError, match="expected 1 input"):
        check_segformer_io(path)


def test_rejects_onnx_with_wrong_rank(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    path = _save_graph(tmp_path / "flat.onnx", [x], [y], [helper.make_node("Relu", ["x"], ["y"])])
    with pytest.raises(OnnxModelError, match=r"\(N,3,H,W\)"):
        load_onnx_predictor(path)


def test_rejects_truncated_onnx(exported, tmp_path):
    data = exported[0].read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxModelError, match="truncated"):
        load_onnx_predictor(bad)

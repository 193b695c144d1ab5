"""TensorRT engines (FP16, INT8 with a calibration cache) built from the ONNX export; CUDA only.

Optimization profile: batch 1-8, H/W from half the crop size up to the largest size the cell's
inference protocol feeds the model (test_scale long side for `whole`, the crop for `slide`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from segopt_core.backends.errors import ArtifactError, BackendUnavailable
from segopt_core.backends.folding import fold_decode_head
from segopt_core.backends.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx
from segopt_core.backends.options import VariantOptions
from segopt_core.variants import CellSpec

ENGINE_FILE = "model.engine"
ONNX_FILE = "model.onnx"
CACHE_FILE = "calibration.cache"
MAX_BATCH = 8


def require_tensorrt():
    """The tensorrt module, or BackendUnavailable when TensorRT or a CUDA device is missing."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(
            "TensorRT needs a CUDA device: none found (torch.cuda.is_available() is False)"
        )
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable(
            "TensorRT is not installed: pip install 'segopt[tensorrt]' (tensorrt>=10)"
        ) from None
    return trt


def check_available(options: VariantOptions) -> None:
    """BackendUnavailable where TensorRT or a CUDA device is missing."""
    require_tensorrt()


def profile_shapes(spec: CellSpec) -> dict[str, tuple[int, int, int, int]]:
    """min/opt/max input shapes of the optimization profile."""
    h, w = spec.crop_size
    big = (h, w) if spec.inference_mode == "slide" else (max(spec.test_scale), max(spec.test_scale))
    return {"min": (1, 3, max(32, h // 2), max(32, w // 2)), "opt": (1, 3, h, w), "max": (MAX_BATCH, 3, *big)}


def _int8_calibrator(trt, calib: np.ndarray, cache: Path):
    """An IInt8EntropyCalibrator2 feeding the calibration images one by one (device memory via torch)."""
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.images = torch.from_numpy(calib).cuda()
            self.index = 0
            self.current = None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            if self.index >= len(self.images):
                return None
            self.current = self.images[self.index : self.index + 1].contiguous()
            self.index += 1
            return [int(self.current.data_ptr())]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.exists() else None

        def write_calibration_cache(self, data) -> None:
            cache.write_bytes(bytes(data))

    return Calibrator()


def build(model: nn.Module, spec: CellSpec, options: VariantOptions, folder: Path, calib=None) -> dict:
    """Export ONNX, build and serialize the engine into folder/model.engine."""
    trt = require_tensorrt()
    graph = fold_decode_head(model) if options.fold_decode_head else model
    onnx_path = folder / ONNX_FILE
    meta = {"export": export_onnx(graph, spec, onnx_path), "model_file": ENGINE_FILE}
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ArtifactError(f"{onnx_path}: TensorRT cannot parse it ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 4 << 30)
    shapes = profile_shapes(spec)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    if options.precision in ("fp16", "int8-static"):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 engines fall back to fp16 (not fp32) for the rest
    if options.precision == "int8-static":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _int8_calibrator(trt, calib, folder / CACHE_FILE)
        config.set_calibration_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ArtifactError(
            f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)"
        )
    (folder / ENGINE_FILE).write_bytes(bytes(engine))
    return {**meta, "profile": {k: list(v) for k, v in shapes.items()}, "tensorrt_version": trt.__version__}


class TensorRTPredictor:
    """A deserialized engine behind the Predictor interface (I/O through torch CUDA tensors)."""

    def __init__(self, engine_path: Path, name: str, precision: str):
        import torch

        trt = require_tensorrt()
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise ArtifactError(
                f"{engine_path}: TensorRT cannot deserialize it (truncated, or built by another version)"
            )
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.name, self.precision, self.device = name, precision, "cuda"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).cuda()
        self.context.set_input_shape(INPUT_NAME, tuple(x.shape))
        out = torch.empty(
            tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=torch.float32, device="cuda"
        )
        self.context.set_tensor_address(INPUT_NAME, x.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return out.cpu().numpy()


def load(
    folder: Path, metadata: dict, options: VariantOptions, num_threads: int | None = None
) -> TensorRTPredictor:
    """Load the engine of an artifact folder."""
    return TensorRTPredictor(folder / metadata["model_file"], options.slug, options.precision)

"""torch-compile on CUDA: fp16/bf16 AOTInductor CUDA packages, their names, machine binding and CUDA graphs.

The packaging code is the CPU path's (export with dynamic batch and H/W, aoti_compile_and_package); what a
CPU can check runs everywhere, the real CUDA builds are `gpu` tests (skipped here, run by
benchmarks/gpu_check.sh on the GPU machine).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from segopt_core.backends import (
    ArtifactError,
    ArtifactStore,
    BackendUnavailable,
    VariantOptions,
    aoti,
    default_variants,
    load_predictor,
)
from segopt_core.backends import compile as compile_backend
from segopt_core.backends.folding import fold_decode_head
from segopt_core.backends.registry import get_backend
from segopt_core.backends.verify import TOLERANCES, verification_inputs
from segopt_core.errors import OptionError

COMPILED_CUDA = [
    VariantOptions("torch-compile", "fp16", fold_decode_head=True),
    VariantOptions("torch-compile", "bf16", fold_decode_head=True, device="cuda"),
]


def test_fp16_is_a_cuda_only_torch_compile_precision():
    backend = get_backend("torch-compile")
    assert "fp16" in backend.precisions and backend.cuda_precisions == ("fp16",)
    assert VariantOptions("torch-compile", "fp16").device == "cuda"  # placed on CUDA, like torch fp16
    assert VariantOptions("torch-compile", "fp16", device="cpu").device == "cuda"
    slugs = [o.slug for o in COMPILED_CUDA]
    assert slugs == ["torch-compile-fp16-folded-cuda", "torch-compile-bf16-folded-cuda"]


def test_a_cuda_only_precision_must_be_declared_for_cuda():
    from segopt_core.backends.registry import Backend

    with pytest.raises(ValueError, match="cuda_precisions"):
        Backend("x", ("fp32",), ("cpu", "cuda"), "x", cuda_precisions=("fp16",))
    with pytest.raises(ValueError, match="cuda_precisions"):
        Backend("x", ("fp32", "fp16"), ("cpu",), "x", cuda_precisions=("fp16",))


def test_cuda_machines_build_the_compiled_packages_by_default():
    cuda = {o.slug for o in default_variants(cuda=True, bf16=False, pt2e=False)}
    assert {o.slug for o in COMPILED_CUDA} <= cuda
    assert not any("cuda" in o.slug for o in default_variants(cuda=False, bf16=True, pt2e=False))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
@pytest.mark.parametrize("options", COMPILED_CUDA, ids=lambda o: o.slug)
def test_compiled_cuda_variants_are_skipped_without_cuda(options, tmp_path, tiny_model, tiny_spec):
    """A skip (BackendUnavailable, the contract's 'no CUDA'), not an error: the variant exists elsewhere."""
    assert "no CUDA device" in get_backend("torch-compile").available(options)
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        ArtifactStore(tmp_path).get_or_build(tiny_model, options, spec=tiny_spec)
    assert not any(  # nothing half-built is left (the store's per-checkpoint folder at most)
        p for p in tmp_path.rglob("*") if p.is_dir() and not p.name.startswith(".") and p.parent != tmp_path
    )


def test_cuda_packages_take_bigger_batches_and_say_cuda_in_their_name():
    assert [aoti.max_batch_for(d) for d in ("cpu", "cuda", "cuda:0")] == [16, 64, 64]
    dynamic = aoti.shapes_for(512, 512, aoti.max_batch_for("cuda"))
    assert aoti.package_name(dynamic, "cuda") == "model-b1-64-hw64-2048s32-cuda.pt2"
    assert aoti.package_name(aoti.shapes_for(512, 512), "cpu") == "model-b1-16-hw64-2048s32.pt2"
    static = aoti.shapes_for(70, 50, 64)
    assert (static.max_batch, static.height, static.width) == (64, 70, 50)
    assert aoti.package_name(static, "cuda") == "model-b1-64-70x50-cuda.pt2"


def test_a_cuda_package_is_bound_to_torch_cuda_and_the_gpu(tmp_path):
    tag = aoti.machine_tag("cuda")
    assert set(tag) == {"torch", "cuda", "gpu_arch"} and tag["torch"] == torch.__version__
    if not torch.cuda.is_available():
        assert tag["gpu_arch"] == "none"
    entry = {"file": "packages/model-cuda.pt2", "device": "cuda", **tag, "gpu_arch": "sm_00"}
    with pytest.raises(ArtifactError, match=r"model-cuda\.pt2: compiled for another machine: gpu_arch 'sm_0"):
        aoti.check_machine(entry, tmp_path)
    aoti.check_machine({**entry, "gpu_arch": tag["gpu_arch"]}, tmp_path)  # the same GPU: accepted


def test_entries_without_a_device_are_cpu_packages(tmp_path):
    """Packages recorded before CUDA packages existed have no 'device': they are checked as CPU ones."""
    aoti.check_machine({"file": "packages/old.pt2", **aoti.machine_tag("cpu")}, tmp_path)
    with pytest.raises(ArtifactError, match="vec_isa"):
        aoti.check_machine({"file": "packages/old.pt2", "torch": torch.__version__, "vec_isa": "x"}, tmp_path)


def test_cuda_graphs_are_a_cuda_option():
    on_cpu = VariantOptions("torch-compile", "bf16", extra=(("cuda_graphs", "on"),))
    with pytest.raises(OptionError, match="cuda_graphs=on needs device 'cuda'"):
        compile_backend.check_available(on_cpu)
    graphs = VariantOptions("torch-compile", "fp16", fold_decode_head=True, extra=(("cuda_graphs", "on"),))
    steps = compile_backend._compile_steps(graphs)
    assert "torch.autocast(cuda, float16)" in steps and any("CUDA graph" in s for s in steps)
    assert compile_backend.cuda_graphs_requested(graphs)
    assert not compile_backend.cuda_graphs_requested(COMPILED_CUDA[0])


@pytest.mark.slow
def test_fp16_autocast_graph_exports_with_dynamic_batch_and_size(tiny_model):
    """The graph a CUDA fp16 package is compiled from, exported on the CPU: dynamic batch, H/W; fp32 out."""
    module = compile_backend.Autocast(fold_decode_head(tiny_model), "cpu", torch.float16)
    shapes = aoti.shapes_for(64, 64, aoti.max_batch_for("cuda"))
    with torch.no_grad():
        program = torch.export.export(
            module, (aoti.example_input(shapes, (64, 64)),), dynamic_shapes=aoti.dynamic_shapes(shapes)
        )
    batch = torch.from_numpy(verification_inputs((3, 3, 96, 64), seed=7))  # other batch and size than export
    with torch.no_grad():
        out, ref = program.module()(batch), tiny_model(batch)
    assert out.dtype == torch.float32 and out.shape == ref.shape == (3, 150, 24, 16)
    tol = TOLERANCES["fp16"]
    assert float((out - ref).abs().max() / ref.abs().max()) <= tol.max_rel_diff
    assert float((out.argmax(1) == ref.argmax(1)).float().mean()) >= tol.min_argmax_agreement


# --- on a GPU ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=COMPILED_CUDA, ids=lambda o: o.precision)
def cuda_artifact(request, tmp_path_factory, tiny_model, tiny_spec):
    """The tiny model's CUDA package artifact (fp16, bf16), built once per module."""
    store = ArtifactStore(tmp_path_factory.mktemp("cuda-packages"))
    return store.get_or_build(tiny_model, request.param, spec=tiny_spec)


@pytest.mark.gpu
def test_cuda_package_is_built_verified_and_recorded(cuda_artifact):
    meta = cuda_artifact.metadata
    assert meta["verification"]["passed"] and meta["device"] == "cuda"
    (entry,) = meta["packages"]
    assert entry["file"].endswith("-cuda.pt2") and entry["device"] == "cuda"
    assert entry["gpu_arch"] == aoti.cuda_arch() and entry["cuda"] == torch.version.cuda
    assert entry["shapes"]["max_batch"] == aoti.CUDA_MAX_BATCH and entry["shapes"]["height"] is None
    assert any("torch.autocast(cuda" in step for step in meta["compiled"])


@pytest.mark.gpu
def test_cuda_package_matches_fp32_at_a_batch_above_the_cpu_range(cuda_artifact, tiny_model):
    batch = verification_inputs((aoti.MAX_BATCH + 4, 3, 64, 96), seed=7)
    with torch.inference_mode():
        ref = tiny_model(torch.from_numpy(batch)).numpy()
    predictor = load_predictor(cuda_artifact.path)
    out = predictor(batch)
    tol = TOLERANCES[cuda_artifact.options.precision]
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert np.abs(out - ref).max() <= tol.max_rel_diff * np.abs(ref).max()
    assert (out.argmax(1) == ref.argmax(1)).mean() >= tol.min_argmax_agreement
    on_device = predictor.run_tensor(torch.from_numpy(batch).cuda())
    assert on_device.is_cuda  # the same package: equal up to the kernels' own run-to-run noise
    torch.testing.assert_close(on_device.cpu(), torch.from_numpy(out), rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
def test_plain_torch_runs_the_cuda_package(cuda_artifact, tmp_path):
    """What a user ships: the -cuda.pt2 runs with torch alone, on CUDA tensors."""
    package = cuda_artifact.path / cuda_artifact.metadata["packages"][0]["file"]
    batch = verification_inputs((2, 3, 96, 64), seed=5)
    np.save(tmp_path / "x.npy", batch)
    script = textwrap.dedent(f"""
        import sys, numpy as np, torch
        run = torch._inductor.aoti_load_package({str(package)!r})
        out = run(torch.from_numpy(np.load({str(tmp_path / "x.npy")!r})).cuda())
        np.save({str(tmp_path / "y.npy")!r}, out.cpu().numpy())
        assert not any(name.startswith("segopt") for name in sys.modules), "segopt was imported"
    """)
    subprocess.run([sys.executable, "-I", "-c", script], check=True, timeout=300)
    expected = load_predictor(cuda_artifact.path)(batch)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
def test_cuda_graphs_replay_what_the_package_computes(cuda_artifact):
    options = cuda_artifact.options
    plain = compile_backend.PackagedPredictor(cuda_artifact.path, cuda_artifact.metadata, options)
    graphed = compile_backend.PackagedPredictor(
        cuda_artifact.path, cuda_artifact.metadata, options, cuda_graphs=True
    )
    for shape in [(1, 3, 64, 64), (4, 3, 96, 64), (1, 3, 64, 64)]:
        x = torch.from_numpy(verification_inputs(shape, seed=sum(shape))).cuda()
        torch.testing.assert_close(graphed.run_tensor(x), plain.run_tensor(x), rtol=1e-3, atol=1e-3)
    (runner,) = graphed.runners.values()
    assert isinstance(runner, compile_backend.CudaGraphs)
    assert runner.failed == "" and len(runner.graphs) == 2  # one graph per shape, replayed the third time

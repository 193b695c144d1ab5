"""AOTInductor packages of the torch-compile variants: shippable, reused across sizes, refused when broken."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from segopt_core.backends import ArtifactError, ArtifactStore, VariantOptions, aoti, load_predictor
from segopt_core.backends import compile as compile_backend
from segopt_core.backends.artifacts import METADATA_FILE, check_artifact
from segopt_core.backends.errors import VerificationError
from segopt_core.backends.folding import fold_decode_head
from segopt_core.backends.verify import verification_inputs

pytestmark = pytest.mark.slow


@pytest.fixture()
def artifact_copy(compiled_fp32, tmp_path):
    """A private copy of the compiled artifact folder, safe to change."""
    folder = tmp_path / compiled_fp32.path.name
    shutil.copytree(compiled_fp32.path, folder)
    return folder


def package_file(folder) -> str:
    return json.loads((folder / METADATA_FILE).read_text())["packages"][0]["file"]


def reference(model, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(batch)).numpy()


def test_plain_torch_loads_the_package_without_segopt(compiled_fp32, tiny_model, tmp_path):
    """What a user ships: the .pt2 runs with torch alone, at a batch size and size not seen at export."""
    batch = verification_inputs((3, 3, 96, 64), seed=5)
    np.save(tmp_path / "x.npy", batch)
    package = compiled_fp32.path / package_file(compiled_fp32.path)
    script = textwrap.dedent(f"""
        import sys, numpy as np, torch
        run = torch._inductor.aoti_load_package({str(package)!r})
        out = run(torch.from_numpy(np.load({str(tmp_path / "x.npy")!r})))
        np.save({str(tmp_path / "y.npy")!r}, out.numpy())
        assert not any(name.startswith("segopt") for name in sys.modules), "segopt was imported"
    """)
    subprocess.run([sys.executable, "-I", "-c", script], check=True, timeout=300)
    out = np.load(tmp_path / "y.npy")
    assert out.shape == (3, 150, 24, 16)
    np.testing.assert_allclose(out, reference(tiny_model, batch), atol=1e-4)


def test_batches_above_the_package_range_are_split(compiled_fp32, tiny_model):
    batch = verification_inputs((aoti.MAX_BATCH + 2, 3, 64, 64), seed=2)
    out = load_predictor(compiled_fp32.path)(batch)
    np.testing.assert_allclose(out, reference(tiny_model, batch), atol=1e-4)


def test_a_new_size_is_compiled_once_verified_kept_and_flagged_in_the_row(
    artifact_copy, tiny_model, monkeypatch, caplog
):
    """One first-use compile (the slowest step of this file) checks the artifact, the console and the row."""
    from segopt_core.benchmark import benchmark_predictor

    compiles = []
    real = aoti.compile_package
    monkeypatch.setattr(aoti, "compile_package", lambda *a, **k: compiles.append(a[1]) or real(*a, **k))
    batch = verification_inputs((2, 3, 70, 50), seed=3)  # not a multiple of 32: needs its own package
    predictor = load_predictor(artifact_copy)
    with caplog.at_level(logging.WARNING, logger="segopt.compile"):
        rows = benchmark_predictor(predictor, (70, 50), batch_sizes=[1, 2], warmup=0, iters=2)
    compile_ms = predictor.first_use_seconds * 1e3
    # flagged in the row, and kept out of first_call_ms: the compile is a build step, not a first call
    assert compile_ms > 1000 and [r["compiled_on_first_use"] for r in rows] == [True, False]
    assert rows[0]["first_call_ms"] < compile_ms / 2
    np.testing.assert_allclose(predictor(batch), reference(tiny_model, batch), atol=1e-4)
    meta = check_artifact(artifact_copy)  # the new file is recorded and the artifact still checks out
    added = meta["packages"][1]
    assert added["added_on_first_use"] and added["shapes"] == {"max_batch": 16, "height": 70, "width": 50}
    assert added["first_use_seconds"] > 0 and added["file"] in meta["files"]
    # verified against the fp32 model like a build, and said on the console (issue #23, item 3)
    assert added["verification"]["passed"] and added["verification"]["shape"] == [1, 3, 70, 50]
    assert "compiled one on first use" in caplog.text and "verified it against the fp32" in caplog.text
    assert meta["model_files"] == [entry["file"] for entry in meta["packages"]]  # what the size counts
    again = load_predictor(artifact_copy)  # a second load reuses it: no second compile
    np.testing.assert_allclose(again(batch), reference(tiny_model, batch), atol=1e-4)
    rerun = benchmark_predictor(again, (70, 50), batch_sizes=[1], warmup=0, iters=1)
    assert rerun[0]["compiled_on_first_use"] is False
    assert [(s.height, s.width) for s in compiles] == [(70, 50)]


def test_package_for_another_machine_is_refused(artifact_copy):
    meta = json.loads((artifact_copy / METADATA_FILE).read_text())
    meta["packages"][0]["vec_isa"] = "amx512-from-elsewhere"
    (artifact_copy / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="compiled for another machine.*vec_isa.*rebuilt"):
        load_predictor(artifact_copy)


def test_package_from_before_frozen_compiles_is_refused(artifact_copy):
    meta = json.loads((artifact_copy / METADATA_FILE).read_text())
    del meta["packages"][0]["inductor_configs"]
    (artifact_copy / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="without frozen weights by an older segopt.*rebuild"):
        load_predictor(artifact_copy)


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_broken_package_names_the_file(artifact_copy, damage):
    path = artifact_copy / package_file(artifact_copy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\0" * len(data))
    with pytest.raises(ArtifactError, match=f"{path.name}.*rebuild"):
        load_predictor(artifact_copy)


def test_truncated_package_is_rebuilt(tmp_path, tiny_model, tiny_spec, compiled_fp32):
    store = ArtifactStore(tmp_path)
    folder = store.folder_for(compiled_fp32.metadata["checkpoint_sha256"], compiled_fp32.options)
    shutil.copytree(compiled_fp32.path, folder)
    path = folder / package_file(folder)
    path.write_bytes(path.read_bytes()[:1000])
    rebuilt = store.get_or_build(tiny_model, compiled_fp32.options, spec=tiny_spec)
    assert not rebuilt.reused and check_artifact(rebuilt.path)
    batch = verification_inputs((1, 3, 64, 64), seed=1)
    np.testing.assert_allclose(load_predictor(rebuilt.path)(batch), reference(tiny_model, batch), atol=1e-4)


@pytest.fixture()
def eager_check(monkeypatch):
    """Replace the package-vs-eager comparison by the given sequence of differences."""

    def use(*diffs: float) -> None:
        values = iter(diffs)
        monkeypatch.setattr(compile_backend, "package_vs_eager", lambda *args: next(values))

    return use


def build_tiny_package(tiny_model, folder):
    shapes = aoti.PackageShapes(height=64, width=64)  # static: the quickest compile
    options = VariantOptions("torch-compile", "fp32", fold_decode_head=True)
    return shapes, compile_backend.build_package(
        fold_decode_head(tiny_model), options, shapes, folder, (64, 64), None
    )


def stand_in_compiles(monkeypatch, stand_ins: int) -> list[dict]:
    """The first `stand_ins` package compiles write a stand-in file (the decisions under test are taken on
    eager_check's given differences, so the first package is never run); later ones compile for real.
    Returns the inductor configs of every compile, in order."""
    configs: list[dict] = []
    real = aoti.compile_package

    def compile_package(module, shapes, path, crop_hw, inductor_configs=aoti.INDUCTOR_CONFIGS, device="cpu"):
        configs.append(inductor_configs)
        if len(configs) > stand_ins:
            return real(module, shapes, path, crop_hw, inductor_configs, device=device)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stand-in package")
        return {"file": f"{aoti.PACKAGE_DIR}/{path.name}", "inductor_configs": inductor_configs}

    monkeypatch.setattr(aoti, "compile_package", compile_package)
    return configs


def test_a_package_that_disagrees_with_eager_is_rebuilt_without_layout_optimization(
    tiny_model, tmp_path, eager_check, caplog, monkeypatch
):
    configs = stand_in_compiles(monkeypatch, stand_ins=1)  # the rebuild without layout optimization is real
    eager_check(0.5, 0.0)
    with caplog.at_level(logging.WARNING, logger="segopt.compile"):
        shapes, entry = build_tiny_package(tiny_model, tmp_path)
    assert configs == [aoti.INDUCTOR_CONFIGS, aoti.SAFE_INDUCTOR_CONFIGS]
    assert entry["inductor_configs"] == aoti.SAFE_INDUCTOR_CONFIGS and "0.5" in entry["rebuilt_because"]
    assert "rebuilding without inductor's layout optimization" in caplog.text
    package = tmp_path / aoti.PACKAGE_DIR / shapes.file_name
    batch = verification_inputs((1, 3, 64, 64), seed=4)
    folded = fold_decode_head(tiny_model)
    np.testing.assert_allclose(aoti.load_package(package)(torch.from_numpy(batch)).numpy(),
                               reference(folded, batch), atol=1e-4)  # fmt: skip


def test_a_package_still_off_after_the_rebuild_is_refused(tiny_model, tmp_path, eager_check, monkeypatch):
    """Both compiles write stand-in files: the refusal is a decision on eager_check's two differences, and
    the test checks that the package file is removed."""
    configs = stand_in_compiles(monkeypatch, stand_ins=2)
    eager_check(0.5, 0.4)
    with pytest.raises(VerificationError, match=r"by 0\.5 .* by 0\.4 without layout optimization"):
        build_tiny_package(tiny_model, tmp_path)
    assert configs == [aoti.INDUCTOR_CONFIGS, aoti.SAFE_INDUCTOR_CONFIGS]
    assert not list((tmp_path / aoti.PACKAGE_DIR).glob("*.pt2"))


def test_a_read_only_artifact_given_a_new_size_says_what_to_do_in_one_line(compiled_fp32, tmp_path):
    from segopt_core.backends.errors import ReadOnlyArtifact
    from tests.disk import tmpfs

    with tmpfs(tmp_path / "ro", "64m") as disk:
        folder = disk / compiled_fp32.path.name
        shutil.copytree(compiled_fp32.path, folder)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        predictor = load_predictor(folder)
        np.testing.assert_equal(predictor(verification_inputs((1, 3, 64, 64))).shape, (1, 150, 16, 16))
        with pytest.raises(
            ReadOnlyArtifact, match=r"read-only, and none of its packages serves 70x50"
        ) as err:
            predictor(verification_inputs((1, 3, 70, 50)))  # refused before compiling anything
        assert "\n" not in str(err.value) and "--input-size 70x50" in str(err.value)
        assert isinstance(err.value, ValueError)  # bad input: exit 2 on the command line


def test_a_package_of_another_class_count_is_refused_on_load(compiled_fp32, tmp_path, tiny_city_spec):
    """A 19-class .pt2 copied into a 150-class artifact with size and sha updated used to run silently."""
    from segopt_core.backends.integrity import file_record
    from segopt_core.models import LogitsModel, build_hf_model

    city = LogitsModel(build_hf_model(tiny_city_spec, seed=1)).eval()
    _, entry = build_tiny_package(city, tmp_path / "city")  # static 64x64, 19 classes
    folder = tmp_path / "artifact"
    shutil.copytree(compiled_fp32.path, folder)
    meta = json.loads((folder / METADATA_FILE).read_text())
    name = meta["packages"][0]["file"]
    shutil.copy(tmp_path / "city" / entry["file"], folder / name)
    meta["files"][name] = file_record(folder / name)
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="the model outputs 19 classes, the artifact's cell .* has 150"):
        load_predictor(folder)(verification_inputs((1, 3, 64, 64)))


def test_a_cpu_package_runs_bit_identical_to_torchs_loader_and_lets_other_threads_run(compiled_fp32):
    """torch's loader holds the GIL through a call (pytorch#197516); segopt's runner releases it."""
    import threading

    path = compiled_fp32.path / package_file(compiled_fp32.path)
    runner, reference_runner = aoti.load_package(path), torch._inductor.aoti_load_package(str(path))
    assert isinstance(runner, aoti.GilFreeRunner)
    x = torch.from_numpy(verification_inputs((16, 3, 512, 512), seed=6))
    with torch.inference_mode():
        torch.testing.assert_close(runner(x), reference_runner(x), rtol=0, atol=0)
        ticks, stop = [0], threading.Event()

        def tick() -> None:
            while not stop.is_set():
                ticks[0] += 1

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            during = []
            for _ in range(3):  # the ticker may not have been scheduled yet on a busy machine
                before = ticks[0]
                runner(x)
                during.append(ticks[0] - before)
        finally:
            stop.set()
            ticker.join()
    assert max(during) > 0, "no other Python thread ran during a model call: the GIL was held"


def test_a_package_that_is_not_a_cpu_library_is_left_to_torchs_loader(tmp_path):
    bad = tmp_path / "model-b1-16-64x64.pt2"
    bad.write_bytes(b"not a zip")
    assert aoti.GilFreeRunner.open(bad) is None
    with pytest.raises(ArtifactError, match="cannot load the AOTInductor package"):
        aoti.load_package(bad)


def batch_only_parallel_kernels(package) -> list[str]:
    """The package's C++ kernels whose one parallel loop runs over the batch (one thread at batch 1)."""
    import re
    import zipfile

    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
        wrapper = next(archive.read(n).decode() for n in names if n.endswith(".wrapper.cpp"))
        kernels = next(archive.read(n).decode() for n in names if n.endswith(".kernel.cpp"))
    batch = re.search(r"int64_t (\w+) = \w+_size\[0\];", wrapper).group(1)  # the input's dim 0
    found = []
    for body in re.split(r'extern "C"\s+void\s+', kernels)[1:]:
        name = body.split("(", 1)[0]
        sizes = re.findall(r"const int64_t (ks\d+)", body.split(")", 1)[0])
        call = re.search(rf"\b{name}\((.*?)\);", wrapper)
        loop = re.search(
            r"#pragma omp for\s*\n\s*for\(int64_t \w+=[^;]*;\s*\w+<static_cast<int64_t>\((\w+)\);", body
        )
        if sizes and call and loop:
            args = [a.strip() for a in call.group(1).split(",") if not a.strip().startswith("(")]
            if dict(zip(sizes, args[-len(sizes) :], strict=True)).get(loop.group(1)) == batch:
                found.append(name)
    return found


def test_no_kernel_of_a_package_parallelises_over_the_batch_alone(compiled_fp32):
    """At batch 1 such a kernel runs on one thread: the export's example batch must not look like enough
    parallel work to inductor (aoti.example_batch). Exported with batch 2 on two threads, the tiny model's
    head upsampling and the input/logits copies were such kernels."""
    entry = json.loads((compiled_fp32.path / METADATA_FILE).read_text())["packages"][0]
    if entry["compile_threads"] < 2:
        pytest.skip("compiled on one thread: no kernel runs in parallel")
    assert entry["example_batch"] == aoti.example_batch(threads=entry["compile_threads"])
    assert batch_only_parallel_kernels(compiled_fp32.path / entry["file"]) == []


def test_the_example_batch_is_never_one_and_never_the_thread_count():
    """Batch 1 would specialise the dimension; a batch equal to the thread count stops inductor's
    parallel loops at the batch."""
    for threads in range(2, 65):
        batch = aoti.example_batch(threads=threads)
        assert 2 <= batch < 2 * threads and batch != threads
    assert aoti.example_batch("cuda") == 2

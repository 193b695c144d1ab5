"""Variant selection, job planning and task-runner choice."""

from __future__ import annotations

import numpy as np
import pytest

from flows.runners import make_task_runner
from segopt_core.backends import CalibrationError
from segopt_core.errors import OptionError, SegoptError
from segopt_core.pipeline.jobs import CheckpointRef, plan_jobs
from segopt_core.pipeline.params import OptimizeAllParams
from segopt_core.pipeline.selection import select_options
from segopt_core.variants import tiny_cell


def test_torch_fp32_reference_is_always_first():
    options = select_options(["onnxruntime"], ["int8-dynamic"], cuda=False)
    assert [o.slug for o in options] == ["torch-fp32", "onnxruntime-int8-dynamic-folded"]
    options = select_options(["torch", "onnxruntime"], ["fp32"], ["onnxruntime-fp32"], cuda=False)
    assert [o.slug for o in options] == ["torch-fp32", "onnxruntime-fp32"]


def test_explicit_pairs_outside_the_defaults_are_added():
    slugs = [o.slug for o in select_options(["tensorrt"], ["fp16"], cuda=False)]
    assert slugs == ["torch-fp32", "tensorrt-fp16"]  # on a CPU machine this becomes a skipped row
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        select_options(["tensorflow"], None)


def test_a_slug_may_name_a_variant_outside_the_machine_defaults():
    slugs = [o.slug for o in select_options(variants=["torch-compile-int8-static-folded"], cuda=False)]
    assert slugs == ["torch-fp32", "torch-compile-int8-static-folded"]
    with pytest.raises(ValueError, match="unknown variant 'onnxruntime-fp33'.*onnxruntime-fp32-folded"):
        select_options(variants=["onnxruntime-fp33"], cuda=False)


def test_job_keys_depend_on_checkpoint_options_and_settings():
    ckpt = CheckpointRef("a.safetensors", tiny_cell(), "sha-a")
    options = select_options(["torch"], ["fp32"], cuda=False)
    first = plan_jobs([ckpt], options, {"batch_sizes": [1]})
    again = plan_jobs([ckpt], options, {"batch_sizes": [1]})
    other = plan_jobs([ckpt], options, {"batch_sizes": [1, 2]})
    assert [j.key for j in first] == [j.key for j in again]
    assert len({j.key for j in first}) == len(first) and first[0].key != other[0].key


def test_task_runners():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert isinstance(make_task_runner("threads"), ThreadPoolTaskRunner)
    assert isinstance(make_task_runner("dask", "tcp://127.0.0.1:8786"), DaskTaskRunner)
    with pytest.raises(ValueError, match="valid: threads, dask"):
        make_task_runner("ray")


def test_default_sources_prefer_the_demo_trained_b0(tmp_path):
    from segopt_core.pipeline.demo_zoo import default_sources

    assert default_sources(tmp_path) == ([str(tmp_path / "zoo")], None)
    best = tmp_path / "checkpoints" / "b0-demo-128" / "best"
    best.mkdir(parents=True)
    (best / "config.json").write_text("{}")
    (tmp_path / "data" / "synth-ade20k").mkdir(parents=True)
    assert default_sources(tmp_path) == ([str(best)], str(tmp_path / "data" / "synth-ade20k"))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "precisions",
            ["int8"],
            r"unknown precision 'int8' \(did you mean int8-\w+ or int8-\w+\?\); valid: fp32,",
        ),
        (
            "backends",
            ["onnx-runtime"],
            r"unknown backend 'onnx-runtime' \(did you mean onnxruntime\?\); valid: torch,",
        ),
        (
            "backends",
            ["tensorflow"],
            r"unknown backend 'tensorflow'; valid: torch, torch-compile, onnxruntime",
        ),
        ("variants", ["torch-fp33"], r"unknown variant 'torch-fp33' \(did you mean torch-fp32.*; valid: "),
        ("cells", ["b9-999-mars"], r"unknown cell pattern 'b9-999-mars'; valid: .*b0-512-ade20k"),
        ("batch_sizes", [1, 0], r"batch sizes must be integers from 1 to 1024, e.g. 1,4,8; got 0"),
    ],
)
def test_mistyped_options_are_refused_with_the_valid_values(option, value, message):
    """`--precisions int8` used to build torch-fp32 only and exit 0; the others died with a traceback."""
    with pytest.raises(OptionError, match=message) as caught:
        OptimizeAllParams.from_flow(**{option: value}).variant_options()
    assert isinstance(caught.value, SegoptError) and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


def test_filters_that_select_nothing_here_are_refused():
    with pytest.raises(OptionError, match="no variant matches --backends tensorrt on this machine"):
        select_options(["tensorrt"], None, cuda=False)
    with pytest.raises(OptionError, match="--backends torch-compile --precisions int8-dynamic"):
        select_options(["torch-compile"], ["int8-dynamic"], cuda=False)


@pytest.mark.parametrize(
    "pattern", ["b0", "ade20k", "B2-1024", "tiny-64-ade20k", "b0-128-ade20k", "b0-512-ade20k-19cls-custom"]
)
def test_cell_patterns_of_matrix_and_custom_cells_are_accepted(pattern):
    params = OptimizeAllParams.from_flow(cells=[pattern], variants=["torch-fp32"], batch_sizes=[1, 4])
    assert [o.slug for o in params.variant_options()] == ["torch-fp32"]


def test_calibration_images_of_optimize_all_use_the_one_calibration_loader(tmp_path, tiny_spec):
    from segopt_core.data import synth_dataset
    from segopt_core.pipeline.stages import EvalSource, calibration_images

    data = synth_dataset(tmp_path / "ade", "ade20k", n_train=0, n_val=3, size=(48, 80), seed=0)
    batch = calibration_images(EvalSource(data_dir=str(data)), tiny_spec, count=8)  # no train split: val
    assert batch.shape == (3, 3, 64, 64) and batch.dtype == np.float32
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no images found"):
        calibration_images(EvalSource(samples_dir=str(tmp_path / "empty")), tiny_spec)


def test_a_full_disk_fails_the_variant_not_the_run(tmp_path, monkeypatch):
    import segopt_core.backends as backends
    from segopt_core.atomic import is_disk_full
    from segopt_core.pipeline.stages import build_job

    class SafetensorError(Exception):  # libraries wrap the OS error in their own types
        pass

    def full(self, *args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(backends.ArtifactStore, "get_or_build", full)
    monkeypatch.setattr("segopt_core.checkpoints.load_checkpoint", lambda *a, **k: None)
    ckpt = CheckpointRef("a.safetensors", tiny_cell(), "sha-a")
    job = plan_jobs([ckpt], select_options(["torch"], ["fp32"], cuda=False), {})[0]
    record = build_job(job, tmp_path / "store")
    assert record.status == "failed" and "no space left on device" in record.error
    assert is_disk_full(OSError(28, "No space left on device")) and not is_disk_full(ValueError("bad"))


def test_a_report_that_cannot_be_written_names_the_folder(tmp_path, monkeypatch):
    import tasks.report as report

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report.reports, "write_report", full)  # the core writer the task calls
    with pytest.raises(OSError, match=f"report {tmp_path}: no space left on device"):
        report.write_report.fn([], str(tmp_path), {}, str(tmp_path / "history"))

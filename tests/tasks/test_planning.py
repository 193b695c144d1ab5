"""Variant selection, job planning and task-runner choice."""

from __future__ import annotations

import pytest

from flows.runners import make_task_runner
from segopt_core.pipeline.jobs import CheckpointRef, plan_jobs, select_options
from segopt_core.variants import tiny_cell


def test_torch_fp32_reference_is_always_first():
    options = select_options(["onnxruntime"], ["int8-dynamic"], cuda=False)
    assert [o.slug for o in options] == ["torch-fp32", "onnxruntime-int8-dynamic-folded"]
    options = select_options(["torch", "onnxruntime"], ["fp32"], ["onnxruntime-fp32"], cuda=False)
    assert [o.slug for o in options] == ["torch-fp32", "onnxruntime-fp32"]


def test_explicit_pairs_outside_the_defaults_are_added():
    slugs = [o.slug for o in select_options(["tensorrt"], ["fp16"], cuda=False)]
    assert slugs == ["torch-fp32", "tensorrt-fp16"]  # on a CPU machine this becomes a skipped row
    with pytest.raises(ValueError, match="unknown backends"):
        select_options(["tensorflow"], None)


def test_a_slug_may_name_a_variant_outside_the_machine_defaults():
    slugs = [o.slug for o in select_options(variants=["torch-compile-int8-static-folded"], cuda=False)]
    assert slugs == ["torch-fp32", "torch-compile-int8-static-folded"]
    with pytest.raises(ValueError, match="unknown variants.*onnxruntime-fp32-folded"):
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
    assert record["status"] == "failed" and "no space left on device" in record["error"]
    assert is_disk_full(OSError(28, "No space left on device")) and not is_disk_full(ValueError("bad"))


def test_a_report_that_cannot_be_written_names_the_folder(tmp_path, monkeypatch):
    import tasks.report as report

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "write_report", full)
    with pytest.raises(OSError, match=f"report {tmp_path}: no space left on device"):
        report.write_report_task.fn([], str(tmp_path), {}, str(tmp_path / "history"))

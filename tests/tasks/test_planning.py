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


def test_default_sources_prefer_the_demo_trained_b0(tmp_path):
    from segopt_core.pipeline.jobs import default_sources

    assert default_sources(tmp_path) == ([str(tmp_path / "zoo")], None)
    best = tmp_path / "checkpoints" / "b0-demo-128" / "best"
    best.mkdir(parents=True)
    (best / "config.json").write_text("{}")
    (tmp_path / "data" / "synth-ade20k").mkdir(parents=True)
    assert default_sources(tmp_path) == ([str(best)], str(tmp_path / "data" / "synth-ade20k"))

"""VariantRecord: the typed record every stage passes on, and its JSON form in the result cache."""

from __future__ import annotations

import dataclasses

import pytest

from segopt_core.backends.options import VariantOptions
from segopt_core.pipeline.cache import ResultCache
from segopt_core.pipeline.jobs import CheckpointRef, plan_jobs
from segopt_core.variants import tiny_cell


def _job():
    ckpt = CheckpointRef("zoo/a.safetensors", tiny_cell(), "sha-a")
    return plan_jobs([ckpt], [VariantOptions("onnxruntime", "int8-dynamic")], {"batch_sizes": [1]})[0]


def test_a_planned_record_names_its_checkpoint_and_variant():
    record = _job().record()
    assert record.status == "planned" and record.variant == "onnxruntime-int8-dynamic"
    assert record.cell == tiny_cell().name and record.checkpoint_sha256 == "sha-a"
    assert record.device == "cpu" and record.cache_key == _job().key
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "ok"  # stages return dataclasses.replace(record, ...)
    with pytest.raises(ValueError, match="unknown record status"):
        dataclasses.replace(record, status="done")


def test_the_cache_round_trips_records_and_reads_old_entries(tmp_path):
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    record = _job().record("ok", artifact=str(artifact), build_seconds=1.5, bench_rows=[{"batch_size": 1}])
    cache = ResultCache(tmp_path / "results")
    cache.put(record.cache_key, artifact, record)
    assert cache.get_record(record.cache_key) == record
    old = {k: v for k, v in record.to_dict().items() if k not in ("reused", "eval_seconds")}
    cache.put("old", artifact, {**old, "a_key_no_longer_written": 1})  # written by an earlier segopt
    assert cache.get_record("old") == record
    cache.put("broken", artifact, {"status": "ok"})  # not a whole record: a cache miss, redone
    assert cache.get_record("broken") is None


def test_nightly_names_the_source_checkpoint_from_cached_records(tmp_path):
    from segopt_core.pipeline.stored import _checkpoint_paths

    artifact = tmp_path / "artifact"
    artifact.mkdir()
    record = _job().record("ok", artifact=str(artifact))
    cache = ResultCache(tmp_path / "results")
    cache.put(record.cache_key, artifact, record)
    cache.put("broken", artifact, {"status": "ok"})
    assert _checkpoint_paths(tmp_path / "results") == {str(artifact.resolve()): "zoo/a.safetensors"}

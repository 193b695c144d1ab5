"""The one measuring loop: rows per batch size and the same-round pair with the torch fp32 reference."""

from __future__ import annotations

import pytest

from segopt_core.benchmark import Candidate, MeasureConfig, Rounds, TimingConfig, measure_variant
from segopt_core.benchmark.paired import REFERENCE, VARIANT, measure_loaded, with_speedups

QUICK = TimingConfig(warmup_iters=1, iters=3)


def test_same_round_pair_gives_the_speedup_of_known_latencies(sleep_predictor):
    reference, variant = sleep_predictor(base_s=0.02), sleep_predictor(base_s=0.005)
    config = MeasureConfig((1, 2), QUICK, Rounds(3, 2, 1))
    measured = measure_loaded(variant, Candidate("fast", "unused"), (16, 16), config, lambda: reference)
    first, second = measured.rows
    assert first["reference_latency_ms"] == pytest.approx(20, rel=0.5)
    assert first["paired_latency_ms"] == pytest.approx(5, rel=0.5)
    assert second["reference_latency_ms"] is None  # paired at the smallest batch size only
    assert set(measured.rounds_ms) == {1} and len(measured.rounds_ms[1][REFERENCE]) == 3 * 2
    assert first["speedup_vs_torch_fp32"] is None  # filled across a run's rows by with_speedups


def test_rounds_only_rows_come_from_the_shared_rounds_with_peers(sleep_predictor):
    reference, variant, peer = (sleep_predictor(base_s=s) for s in (0.012, 0.003, 0.006))
    config = MeasureConfig((1, 2), timing=None, rounds=Rounds(2, 2, 0), pair_every_batch_size=True)
    measured = measure_loaded(variant, Candidate("v", "unused"), (16, 16), config, lambda: reference,
                              {"peer": peer}, load_ms=1.0)  # fmt: skip
    assert [r["status"] for r in measured.rows] == ["ok", "ok"]
    for row in measured.rows:
        samples = measured.rounds_ms[row["batch_size"]]
        assert set(samples) == {REFERENCE, VARIANT, "peer"} and row["iters"] == len(samples[VARIANT]) == 4
        assert (
            row["reference_latency_ms"] > row["paired_latency_ms"] == pytest.approx(row["latency_ms_median"])
        )
        assert row["first_call_ms"] is None and row["load_ms"] == 1.0


def test_an_out_of_memory_in_the_rounds_ends_the_sweep(sleep_predictor):
    variant = sleep_predictor(base_s=0.001, oom_from_batch=4)
    config = MeasureConfig((1, 4, 8), timing=None, rounds=Rounds(1, 1, 0), pair_every_batch_size=True)
    rows = measure_loaded(variant, Candidate("v", "unused"), (16, 16), config).rows
    assert [r["status"] for r in rows] == ["ok", "oom", "skipped"] and rows[0]["max_batch_ok"] == 1


def test_the_reference_is_its_own_pair_and_a_missing_one_leaves_no_pair(sleep_predictor):
    config = MeasureConfig((1,), QUICK, Rounds(2, 1, 0))
    itself = measure_loaded(sleep_predictor(base_s=0.002), Candidate("torch-fp32", "x", is_reference=True),
                            (16, 16), config).rows[0]  # fmt: skip
    assert itself["reference_latency_ms"] == itself["paired_latency_ms"] == itself["latency_ms_median"]

    def broken():
        raise FileNotFoundError("checkpoint moved")

    alone = measure_loaded(sleep_predictor(base_s=0.002), Candidate("v", "x"), (16, 16), config, broken).rows[
        0
    ]
    assert alone["status"] == "ok" and alone["reference_latency_ms"] is None


def test_speedups_same_round_where_paired_else_separate(sleep_predictor):
    config = MeasureConfig((1, 2), QUICK, Rounds(2, 2, 0))
    reference = sleep_predictor(base_s=0.008)
    rows = measure_loaded(reference, Candidate("torch-fp32", "x", is_reference=True), (16, 16), config).rows
    rows += measure_loaded(sleep_predictor(base_s=0.002), Candidate("v", "x"), (16, 16), config,
                           lambda: reference).rows  # fmt: skip
    by = {(r["variant"], r["batch_size"]): r for r in with_speedups(rows, "torch-fp32")}
    assert by[("v", 1)]["speedup_basis"] == "same-round" and by[("v", 2)]["speedup_basis"] == "separate"
    assert by[("v", 1)]["speedup_vs_torch_fp32"] == pytest.approx(4, rel=0.5)
    assert by[("torch-fp32", 1)]["speedup_vs_torch_fp32"] == 1.0


def test_a_real_artifact_against_the_checkpoint_reference(tiny_model, tiny_spec, tmp_path):
    from segopt_core.backends import ArtifactStore, VariantOptions
    from segopt_core.predictor import TorchPredictor

    store = ArtifactStore(tmp_path)
    options = VariantOptions("torch", "fp32", fold_decode_head=True)
    candidate = Candidate(options.slug, lambda: store.get_or_build(tiny_model, options, spec=tiny_spec).path,
                          "fp32")  # fmt: skip
    config = MeasureConfig((1,), TimingConfig(warmup_iters=0, iters=2), Rounds(2, 1, 1))
    (row,) = measure_variant(candidate, tiny_spec, config, lambda: TorchPredictor(tiny_model)).rows
    assert row["status"] == "ok" and row["load_ms"] > 0 and row["model_size_mib"] > 0
    assert row["reference_latency_ms"] > 0 and row["paired_latency_ms"] > 0


def test_rounds_spread_the_timing_and_refuse_nothing_to_measure():
    assert Rounds.spread(TimingConfig(warmup_iters=3, iters=20)) == Rounds(5, 4, 3)
    assert Rounds.spread(TimingConfig(warmup_iters=0, iters=3)) == Rounds(5, 1, 0)
    with pytest.raises(ValueError, match="nothing to measure"):
        MeasureConfig(timing=None, rounds=None)

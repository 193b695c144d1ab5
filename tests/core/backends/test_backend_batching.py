"""Micro-batches: measured per-image cost at build, larger batches split into runs of the best size."""

from __future__ import annotations

import numpy as np
import pytest

from segopt_core.backends import ArtifactStore, VariantOptions, batching, load_predictor
from segopt_core.backends.batching import MicroBatched, measure_micro_batch, pick_size
from segopt_core.backends.verify import verification_inputs
from segopt_core.predictor import TorchPredictor


class CountingPredictor(TorchPredictor):
    """The tiny fp32 model, remembering the batch size of every call."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls: list[int] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        return super().__call__(batch)


def test_a_large_batch_runs_as_micro_batches_with_the_same_logits(tiny_model):
    inner = CountingPredictor(tiny_model)
    batch = verification_inputs((5, 3, 64, 64), seed=3)
    whole = inner(batch)
    inner.calls.clear()
    out = MicroBatched(inner, 2)(batch)
    assert inner.calls == [2, 2, 1]
    np.testing.assert_allclose(out, whole, rtol=1e-4, atol=1e-4)
    assert MicroBatched(inner, 8)(batch).shape == whole.shape and inner.calls[-1] == 5
    with pytest.raises(ValueError, match=">= 1"):
        MicroBatched(inner, 0)


def test_the_smallest_size_within_the_margin_of_the_fastest_wins():
    assert pick_size({1: 10.0, 2: 9.0, 4: 12.0}) == 2
    assert pick_size({1: 10.0, 2: 9.9, 4: 9.8}) == 1  # 2 % faster is noise, not a reason to batch
    assert pick_size({1: 30.0, 2: 20.0, 4: 10.0}) == 4


def test_measuring_times_every_candidate(tiny_model):
    found = measure_micro_batch(TorchPredictor(tiny_model), (64, 64))
    assert found["size"] in batching.CANDIDATES and found["input_hw"] == [64, 64]
    assert set(found["per_image_ms"]) == set(batching.CANDIDATES)
    assert all(ms > 0 for ms in found["per_image_ms"].values())


def test_a_model_too_slow_to_measure_runs_one_image_at_a_time(tiny_model, monkeypatch):
    monkeypatch.setattr(batching, "BUDGET_S", 1e-6)
    found = measure_micro_batch(TorchPredictor(tiny_model), (64, 64))
    assert found["size"] == 1 and "not measured" in found["reason"]


def test_a_cpu_artifact_records_its_micro_batch_and_loads_with_it(tmp_path, tiny_model, tiny_spec):
    artifact = ArtifactStore(tmp_path).get_or_build(
        tiny_model, VariantOptions("torch", "fp32"), spec=tiny_spec
    )
    size = artifact.metadata["micro_batch"]["size"]
    predictor = load_predictor(artifact.path)
    assert isinstance(predictor, MicroBatched) and predictor.size == size
    assert predictor.name == "torch-fp32" and predictor.device == "cpu"
    out = predictor(verification_inputs((5, 3, 64, 64), seed=1))
    assert out.shape == (5, 150, 16, 16)


class SizeDependentPredictor:
    """Per-image cost that batching lowers at 32x32 and raises at 64x64 (sleeps, so the test is about the
    choice, not about a model's speed)."""

    name, precision, device = "fake", "fp32", "cpu"

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import time

        n, side = len(batch), batch.shape[-1]
        self.calls.append((n, side))
        time.sleep(0.002 * (1 if side == 32 else n) * n ** (0.5 if side == 32 else 1))
        return np.zeros((n, 2, side // 4, side // 4), np.float32)


def test_another_input_size_measures_its_own_micro_batch_on_first_use():
    inner = SizeDependentPredictor()
    predictor = MicroBatched(inner, 4, input_hw=(32, 32))
    assert predictor(np.zeros((8, 3, 32, 32), np.float32)).shape == (8, 2, 8, 8)
    assert inner.calls == [(4, 32), (4, 32)]  # the recorded size, no measuring
    inner.calls.clear()
    predictor(np.zeros((8, 3, 64, 64), np.float32))
    assert predictor.sizes[(64, 64)] == 1  # batching costs more per image there
    assert inner.calls[-8:] == [(1, 64)] * 8
    inner.calls.clear()
    predictor(np.zeros((2, 3, 64, 64), np.float32))
    assert inner.calls == [(1, 64), (1, 64)]  # measured once per size


def test_an_artifact_without_a_measured_size_keeps_it_at_every_size(tiny_model):
    inner = CountingPredictor(tiny_model)
    predictor = batching.apply_micro_batch(inner, {"micro_batch": {"size": 2}})
    predictor(verification_inputs((3, 3, 64, 64), seed=2))
    assert inner.calls == [2, 1] and predictor.input_hw is None

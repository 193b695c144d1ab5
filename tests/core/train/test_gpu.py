"""CUDA training with bf16 / fp16 autocast (fp16 with gradient scaling); skipped without a GPU."""

from __future__ import annotations

import math

import pytest
import torch

from segopt_core.train import make_config, train
from segopt_core.variants import tiny_cell


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_amp_run_and_resume_state(synth_ade, tmp_path, amp):
    cfg = make_config(
        iters=6, lr=1e-3, device="cuda", amp=amp, log_interval=1, val_interval=6, warmup_iters=1
    )
    result = train(synth_ade, tiny_cell("ade20k", 32), cfg, tmp_path / amp)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    state = torch.load(result.state_path, weights_only=True)
    assert bool(state["scaler"]) == (amp == "fp16")  # GradScaler state saved only when scaling is on
    assert "cuda" in state["rng"]
    resumed = train(synth_ade, tiny_cell("ade20k", 32), cfg.model_copy(update={"iters": 8}), tmp_path / amp,
                    resume=True)  # fmt: skip
    assert resumed.iterations == 8

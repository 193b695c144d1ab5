"""Short real runs: the loss goes down, exports load, resume after a kill reaches identical weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import SegformerForSemanticSegmentation

from segopt_core.train import ResumeError, make_config, read_metadata, train
from segopt_core.variants import tiny_cell

SPEC = tiny_cell("ade20k", 32)


class Killed(RuntimeError):
    """Stands in for SIGKILL: raised from the metrics callback in the middle of a run."""


def test_short_run_lowers_loss_and_exports(synth_ade, tmp_path):
    cfg = make_config(iters=30, lr=2e-3, batch_size=2, log_interval=5, val_interval=30, warmup_iters=3)
    seen: list[tuple[int, dict]] = []
    result = train(synth_ade, SPEC, cfg, tmp_path / "run", on_metrics=lambda s, m: seen.append((s, m)))
    losses = [m["loss"] for _, m in seen if "loss" in m]
    assert len(losses) == 6 and [s for s, m in seen if "loss" in m] == [5, 10, 15, 20, 25, 30]
    assert losses[-1] < 0.8 * losses[0], losses
    assert any("val_mIoU" in m for _, m in seen)
    assert result.iterations == 30 and result.best_dir is not None and result.best_miou is not None
    meta = read_metadata(result.best_dir)
    assert (
        meta["cell"] == "tiny-32-ade20k"
        and meta["num_classes"] == 150
        and meta["best_miou"] == result.best_miou
    )
    assert meta["training_config"]["lr"] == 2e-3 and meta["iterations"] == 30
    model = SegformerForSemanticSegmentation.from_pretrained(result.latest_dir)
    assert model.config.num_labels == 150 and model.config.id2label[0] == "wall"
    config = json.loads((result.best_dir / "config.json").read_text())
    assert config["hidden_sizes"] == [8, 8, 16, 16]


def test_resume_after_kill_matches_uninterrupted_run(synth_ade, tmp_path):
    cfg = make_config(iters=8, lr=1e-3, batch_size=2, log_interval=1, checkpoint_interval=4, val_interval=100,
                      val_limit=1, warmup_iters=2)  # fmt: skip
    straight = train(synth_ade, SPEC, cfg, tmp_path / "straight")

    def kill_after_checkpoint(step: int, metrics: dict) -> None:
        if step == 5:  # iteration 5 ran; the last checkpoint is from iteration 4
            raise Killed("simulated kill")

    with pytest.raises(Killed):
        train(synth_ade, SPEC, cfg, tmp_path / "resumed", on_metrics=kill_after_checkpoint)
    state = torch.load(tmp_path / "resumed" / "state" / "latest.pt", weights_only=True)
    assert state["position"] == {"iteration": 4, "epoch": 1, "index": 0}  # 8 images / batch 2 = 4 per epoch
    resumed = train(synth_ade, SPEC, cfg, tmp_path / "resumed", resume=True)
    assert resumed.iterations == 8
    a = load_file(straight.latest_dir / "model.safetensors")
    b = load_file(resumed.latest_dir / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    start = state["model"]
    assert not torch.equal(start["decode_head.classifier.weight"], b["decode_head.classifier.weight"])


def test_resume_without_state_fails_clearly(synth_ade, tmp_path):
    with pytest.raises(ResumeError, match="no training state to resume from"):
        train(synth_ade, SPEC, make_config(iters=2), tmp_path / "empty", resume=True)

"""The recipe's defaults, presets, YAML loading and clear rejection of bad values."""

from __future__ import annotations

import pytest

from segopt_core.train import TrainConfig, TrainConfigError, load_config, make_config


def test_defaults_are_mmseg_segformer_recipe():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.betas, cfg.eps, cfg.weight_decay) == (6e-5, (0.9, 0.999), 1e-8, 0.01)
    assert (cfg.head_lr_mult, cfg.norm_decay_mult, cfg.pos_decay_mult) == (10.0, 0.0, 0.0)
    assert (cfg.budget, cfg.warmup_iters, cfg.warmup_start_factor, cfg.poly_power) == (
        160_000,
        1500,
        1e-6,
        1.0,
    )
    assert (cfg.batch_size, cfg.ignore_index, cfg.cat_max_ratio, cfg.ratio_range) == (
        2,
        255,
        0.75,
        (0.5, 2.0),
    )
    assert cfg.resolved_val_interval() == 16_000 and cfg.log_interval == 50
    assert cfg.effective_warmup(160_000) == 1500


def test_short_budget_scales_warmup():
    assert TrainConfig(iters=400).effective_warmup(400) == 40
    assert TrainConfig(iters=400, warmup_iters=10).effective_warmup(400) == 10


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"lr": -1.0}, r"lr=-1\.0: Input should be greater than 0"),
        ({"batch_size": 0}, r"batch_size=0: Input should be greater than or equal to 1"),
        ({"cat_max_ratio": 1.5}, r"cat_max_ratio=1\.5: Input should be less than or equal to 1"),
        ({"amp": "fp8"}, r"amp='fp8': Input should be 'none', 'bf16' or 'fp16'"),
        ({"betas": (0.9, 1.0)}, r"betas=\(0\.9, 1\.0\): both must be in \[0, 1\)"),
        ({"iters": 10, "epochs": 2}, r"iters=10 and epochs=2: give one budget"),
        ({"amp": "fp16"}, r"amp='fp16' needs device='cuda'"),
        ({"learning_rate": 1e-3}, r"learning_rate=0\.001: unknown field; valid fields: lr, betas"),
    ],
)
def test_bad_values_rejected_with_field_value_and_range(values, expected):
    with pytest.raises(TrainConfigError, match=expected):
        make_config(**values)


def test_yaml_preset_file_and_overrides(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("preset: quick\nlr: 0.0005\nepochs: 3\n")
    cfg = load_config(recipe)
    assert (cfg.lr, cfg.epochs, cfg.iters, cfg.batch_size) == (5e-4, 3, None, 4)  # quick's batch, file's lr
    cfg = load_config(recipe, iters=50, lr=None)  # a CLI budget replaces the file's; None = not given
    assert (cfg.iters, cfg.epochs, cfg.lr) == (50, None, 5e-4)


def test_yaml_errors_name_the_file(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("weight_decay: -0.1\n")
    with pytest.raises(TrainConfigError, match=r"bad\.yaml.*weight_decay=-0\.1: Input should be greater"):
        load_config(recipe)
    with pytest.raises(KeyError, match="valid presets: default, quick"):
        load_config(preset_name="fast")


def test_example_recipes_load():
    from pathlib import Path

    files = sorted(Path(__file__).resolve().parents[3].glob("configs/train/*.yaml"))
    assert files, "configs/train/*.yaml examples missing"
    for path in files:
        load_config(path)

"""The training loop: deterministic data stream, AMP, periodic validation, best/latest export, resume."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from segopt_core.data import SegDataset, open_dataset
from segopt_core.errors import SegoptError
from segopt_core.train.augment import AugmentConfig, augment
from segopt_core.train.config import TrainConfig, TrainConfigError
from segopt_core.train.export import export_hf_folder, set_class_names, training_metadata
from segopt_core.train.init import start_point
from segopt_core.train.optim import build_optimizer
from segopt_core.train.schedule import WarmupPoly
from segopt_core.train.state import DataPosition, ResumeError, load_state, restore_state, save_state
from segopt_core.variants import CellSpec

log = logging.getLogger(__name__)

MetricsCallback = Callable[[int, dict[str, float]], None]
STATE_FILE = "state/latest.pt"


class TrainError(SegoptError, RuntimeError):
    """A run that failed while training (e.g. the loss diverged), with the fix in the message; bad input
    (device, budget, data, resume state) is a TrainConfigError / ResumeError (ValueError: exit 2)."""


@dataclass(frozen=True)
class TrainResult:
    """What a run produced: exported folders, the resumable state and the headline numbers."""

    out_dir: Path
    model_dir: Path  # best_dir when validation ran, else latest_dir
    latest_dir: Path
    best_dir: Path | None
    state_path: Path
    cell: str
    iterations: int
    best_miou: float | None
    best_iteration: int | None
    final_loss: float | None
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


class _TrainSamples(Dataset):
    """Augmented samples keyed by (epoch, position, index): the augmentation RNG derives from the key."""

    def __init__(
        self, dataset: SegDataset, keys: list[tuple[int, int, int]], aug: AugmentConfig, spec, seed: int
    ):
        self.dataset, self.keys, self.aug, self.spec, self.seed = dataset, keys, aug, spec, seed

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, position, index = self.keys[i]
        sample = self.dataset[index]
        rng = np.random.default_rng([self.seed, epoch, position])
        pixels, label = augment(sample.image, sample.label, self.aug, self.spec, rng)
        return torch.from_numpy(pixels), torch.from_numpy(label)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled sample order of one epoch (a pure function of seed and epoch)."""
    return np.random.default_rng([seed, epoch, 0x5E6]).permutation(n)


@dataclass
class _Run:
    """Mutable state of one run, shared by the loop's small helpers."""

    config: TrainConfig
    spec: CellSpec
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: WarmupPoly
    scaler: torch.amp.GradScaler
    train_set: SegDataset
    val_set: SegDataset | None
    out_dir: Path
    iters_per_epoch: int
    max_iters: int
    val_every: int
    ckpt_every: int
    init: str
    on_metrics: MetricsCallback | None
    position: DataPosition = field(default_factory=DataPosition)
    best_miou: float | None = None
    best_iteration: int | None = None
    last_val: dict[str, Any] | None = None
    losses: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    last_loss: float | None = None
    tick: float = field(default_factory=time.perf_counter)


def _open_splits(data_root: Path, layout: str) -> tuple[SegDataset, SegDataset | None]:
    """The train split (required) and the val split (optional: no validation without it)."""
    train_set = open_dataset(data_root, split="train", layout=layout)
    try:
        val_set = open_dataset(data_root, split="val", layout=layout)
    except ValueError as exc:
        log.warning("no validation split (%s); training without validation", exc)
        val_set = None
    return train_set, val_set


def _check_device(config: TrainConfig) -> torch.device:
    """The torch device, refusing CUDA when none is present."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError(
            "device 'cuda' asked for, but this torch has no usable CUDA device; use --device cpu"
        )
    return torch.device(config.device)


def _budget(config: TrainConfig, n_train: int) -> tuple[int, int, int, int]:
    """(iters_per_epoch, max_iters, val_every, ckpt_every) in iterations."""
    iters_per_epoch = n_train // config.batch_size  # drop_last: every batch is full
    if iters_per_epoch < 1:
        raise TrainConfigError(
            f"the train split has {n_train} images, fewer than batch_size={config.batch_size}; lower "
            "--batch-size or add images"
        )
    unit = iters_per_epoch if config.by_epoch else 1
    max_iters = config.budget * unit
    if max_iters < 2:
        raise TrainConfigError(f"a budget of {max_iters} iteration(s) is too short; train for at least 2")
    return (
        iters_per_epoch,
        max_iters,
        config.resolved_val_interval() * unit,
        config.resolved_checkpoint_interval() * unit,
    )


def _aug_config(config: TrainConfig, spec: CellSpec) -> AugmentConfig:
    return AugmentConfig(
        scale=spec.test_scale,
        crop=spec.crop_size,
        ratio_range=config.ratio_range,
        cat_max_ratio=config.cat_max_ratio,
        flip_prob=config.flip_prob,
        photometric=config.photometric,
        ignore_index=config.ignore_index,
    )


def _batches(run: _Run):
    """Batches from the current data position to the end of the epoch (then the next epoch, forever)."""
    cfg, n = run.config, len(run.train_set)
    aug = _aug_config(cfg, run.spec)
    while True:
        epoch, start = run.position.epoch, run.position.index
        order = epoch_order(cfg.seed, epoch, n)
        keys = [(epoch, p, int(order[p])) for p in range(start, run.iters_per_epoch * cfg.batch_size)]
        loader = DataLoader(
            _TrainSamples(run.train_set, keys, aug, run.spec, cfg.seed),
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            generator=torch.Generator(),  # keeps DataLoader's base-seed draw off the global torch RNG
            pin_memory=cfg.device == "cuda",
        )
        yield from loader


def _autocast(config: TrainConfig):
    if config.amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if config.amp == "bf16" else torch.float16
    return torch.autocast(device_type=config.device, dtype=dtype)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Cross-entropy on logits upsampled (bilinear, align_corners=False) to the label size.

    As mmseg's CrossEntropyLoss(avg_non_ignore=False): summed over labelled pixels, divided by all pixels.
    """
    logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    return per_pixel.mean()


def train_step(run: _Run, pixels: torch.Tensor, labels: torch.Tensor) -> float:
    """One optimizer update at the current iteration's lr; returns the loss."""
    device = torch.device(run.config.device)
    pixels, labels = pixels.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    run.schedule.apply(run.optimizer, run.position.iteration)
    with _autocast(run.config):
        logits = run.model(pixel_values=pixels).logits
    loss = segmentation_loss(logits, labels, run.config.ignore_index)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.config.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainError(
            f"loss is {value} at iteration {run.position.iteration}; lower the lr or use bf16/fp32"
        )
    return value


def _advance(run: _Run) -> None:
    """Move the data position past one batch (to the next epoch at the end of one)."""
    pos = run.position
    index, epoch = pos.index + run.config.batch_size, pos.epoch
    if index >= run.iters_per_epoch * run.config.batch_size:
        index, epoch = 0, epoch + 1
    run.position = DataPosition(iteration=pos.iteration + 1, epoch=epoch, index=index)


def _emit(run: _Run, metrics: dict[str, float]) -> None:
    step = run.position.iteration
    run.history.append({"step": step, **metrics})
    if run.on_metrics is not None:
        run.on_metrics(step, metrics)


def _log(run: _Run) -> None:
    """Report mean loss, lrs and speed over the last log interval."""
    now = time.perf_counter()
    groups = {g["name"]: g["lr"] for g in run.optimizer.param_groups}
    metrics = {
        "loss": float(np.mean(run.losses)),
        "lr": groups["backbone"],
        "lr_head": groups["head"],
        "seconds_per_iter": (now - run.tick) / len(run.losses),
        "epoch": float(run.position.epoch),
    }
    log.info(
        "iter %d/%d loss %.4f lr %.3g", run.position.iteration, run.max_iters, metrics["loss"], metrics["lr"]
    )
    _emit(run, metrics)
    run.losses, run.tick = [], now


def _metadata(run: _Run, val: dict[str, Any] | None) -> dict[str, Any]:
    return training_metadata(
        run.spec,
        dataset=str(run.train_set.root),
        class_names=tuple(run.train_set.class_names),
        config=run.config.to_flat_dict(),
        iterations=run.position.iteration,
        best_miou=run.best_miou,
        best_iteration=run.best_iteration,
        val_metrics=val,
        init=run.init,
    )


def _validate(run: _Run) -> None:
    """Evaluate on the val split; a new best mIoU is exported to best/."""
    from segopt_core.evaluation import evaluate
    from segopt_core.models import LogitsModel
    from segopt_core.predictor import TorchPredictor

    predictor = TorchPredictor(LogitsModel(run.model), device=run.config.device)
    result = evaluate(predictor, run.val_set, run.spec, limit=run.config.val_limit, progress=False)
    run.model.train()
    summary = {k: result.to_dict()[k] for k in ("mIoU", "aAcc", "mAcc")}
    run.last_val = summary
    miou = result.miou
    if math.isfinite(miou) and (run.best_miou is None or miou > run.best_miou):
        run.best_miou, run.best_iteration = float(miou), run.position.iteration
        export_hf_folder(run.model, run.out_dir / "best", _metadata(run, summary))
    _emit(run, {f"val_{k}": float(v) for k, v in summary.items() if v is not None})


def _checkpoint(run: _Run) -> None:
    """Resumable state to state/latest.pt and the current weights to latest/ (both atomic)."""
    save_state(
        run.out_dir / STATE_FILE,
        model=run.model,
        optimizer=run.optimizer,
        schedule=run.schedule.state_dict(),
        scaler=run.scaler,
        position=run.position,
        best={"miou": run.best_miou, "iteration": run.best_iteration, "val": run.last_val},
        run=_run_identity(run),
    )
    export_hf_folder(run.model, run.out_dir / "latest", _metadata(run, run.last_val))


def _run_identity(run: _Run) -> dict[str, Any]:
    """What must match for a resume to continue the same run."""
    return {"cell": run.spec.name, "num_classes": run.spec.num_classes, "max_iters": run.max_iters}


def _resume(run: _Run) -> None:
    """Continue from state/latest.pt; refuses a state written for another cell or class count."""
    path = run.out_dir / STATE_FILE
    state = load_state(path)
    saved, now = state["run"], _run_identity(run)
    for key in ("cell", "num_classes"):
        if saved.get(key) != now[key]:
            raise ResumeError(f"{path}: state is for {key}={saved.get(key)!r}, this run has {now[key]!r}")
    if saved.get("max_iters") != now["max_iters"]:
        log.warning(
            "resuming with a different budget (%s -> %s iterations)", saved.get("max_iters"), run.max_iters
        )
    run.position = restore_state(state, model=run.model, optimizer=run.optimizer, scaler=run.scaler)
    best = state["best"]
    run.best_miou, run.best_iteration, run.last_val = best["miou"], best["iteration"], best["val"]
    log.info("resumed %s at iteration %d (epoch %d)", path, run.position.iteration, run.position.epoch)


def _after_step(run: _Run) -> None:
    """Logging, validation and checkpointing hooks, in that order, after an update."""
    it = run.position.iteration
    last = it >= run.max_iters
    if it % run.config.log_interval == 0 or last:
        _log(run)
    if run.val_set is not None and (it % run.val_every == 0 or last):
        _validate(run)
    if it % run.ckpt_every == 0 or last:
        _checkpoint(run)


def _progress_bar(run: _Run, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=run.max_iters,
        initial=run.position.iteration,
        desc=f"train {run.spec.name}",
        disable=not enabled,
        unit="it",
    )


def _setup(
    data_root: Path,
    spec: CellSpec | None,
    config: TrainConfig,
    out_dir: Path,
    init: str,
    pretrained_encoder: Path | None,
    layout: str,
    on_metrics: MetricsCallback | None,
) -> _Run:
    """Open data, build the start model, optimizer, schedule and scaler."""
    device = _check_device(config)
    train_set, val_set = _open_splits(Path(data_root), layout)
    class_names = tuple(train_set.class_names)
    start = start_point(spec, init, len(class_names), config.crop_size, config.seed, pretrained_encoder)
    set_class_names(start.model, class_names)
    torch.manual_seed(config.seed)
    model = start.model.to(device).train()
    iters_per_epoch, max_iters, val_every, ckpt_every = _budget(config, len(train_set))
    schedule = WarmupPoly(
        max_iters=max_iters,
        warmup_iters=config.effective_warmup(max_iters),
        start_factor=config.warmup_start_factor,
        power=config.poly_power,
        min_lr=config.min_lr,
    )
    return _Run(
        config=config,
        spec=start.spec,
        model=model,
        optimizer=build_optimizer(model, config),
        schedule=schedule,
        scaler=torch.amp.GradScaler(config.device, enabled=config.amp == "fp16"),
        train_set=train_set,
        val_set=val_set,
        out_dir=Path(out_dir),
        iters_per_epoch=iters_per_epoch,
        max_iters=max_iters,
        val_every=val_every,
        ckpt_every=ckpt_every,
        init=start.description,
        on_metrics=on_metrics,
    )


def train(
    data_root: str | Path,
    spec: CellSpec | None,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    init: str = "scratch",
    pretrained_encoder: str | Path | None = None,
    resume: bool = False,
    layout: str = "auto",
    on_metrics: MetricsCallback | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a SegFormer on a dataset folder; exports latest/ (and best/ with validation) under out_dir."""
    started = time.perf_counter()
    encoder = Path(pretrained_encoder) if pretrained_encoder else None
    run = _setup(Path(data_root), spec, config, Path(out_dir), init, encoder, layout, on_metrics)
    if resume:
        _resume(run)
    log.info("training %s for %d iterations (%d per epoch) into %s", run.spec.name, run.max_iters,
             run.iters_per_epoch, run.out_dir)  # fmt: skip
    with _progress_bar(run, progress) as bar:
        batches = _batches(run)
        while run.position.iteration < run.max_iters:
            pixels, labels = next(batches)
            run.last_loss = train_step(run, pixels, labels)
            run.losses.append(run.last_loss)
            _advance(run)
            bar.set_postfix(loss=f"{run.last_loss:.4f}", lr=f"{run.optimizer.param_groups[0]['lr']:.2e}")
            bar.update(1)
            _after_step(run)
    return _result(run, time.perf_counter() - started)  # the last step always validated and checkpointed


def _result(run: _Run, seconds: float) -> TrainResult:
    best_dir = run.out_dir / "best" if run.best_miou is not None else None
    latest = run.out_dir / "latest"
    return TrainResult(
        out_dir=run.out_dir,
        model_dir=best_dir or latest,
        latest_dir=latest,
        best_dir=best_dir,
        state_path=run.out_dir / STATE_FILE,
        cell=run.spec.name,
        iterations=run.position.iteration,
        best_miou=run.best_miou,
        best_iteration=run.best_iteration,
        final_loss=run.last_loss,
        seconds=seconds,
        history=run.history,
    )

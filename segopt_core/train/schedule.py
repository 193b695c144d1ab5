"""Learning-rate schedule: mmengine's LinearLR warm-up followed by PolyLR, as a closed form per iteration."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch.optim import Optimizer


@dataclass(frozen=True)
class WarmupPoly:
    """LinearLR(start_factor, begin=0, end=warmup) then PolyLR(power, eta_min, begin=warmup, end=max_iters).

    `factor(i)` is the multiplier of each group's base lr used *during* iteration i (0-based), exactly what
    mmengine's chainable schedulers produce when stepped after every iteration:
    - warm-up, i < warmup: start + (1 - start) * i / (warmup - 1)  (LinearLR's total_iters = end - begin - 1,
      so the factor reaches 1.0 at i = warmup - 1);
    - decay, i >= warmup: the chained `(1 - 1/(T - k + 1))**power` telescopes to ((T - k) / T)**power with
      k = i - warmup and T = max_iters - warmup - 1, so the lr reaches eta_min at the last iteration.
    """

    max_iters: int
    warmup_iters: int = 1500
    start_factor: float = 1e-6
    power: float = 1.0
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.max_iters < 2:
            raise ValueError(f"max_iters={self.max_iters}: need at least 2 iterations")
        if not 0 <= self.warmup_iters < self.max_iters:
            raise ValueError(f"warmup_iters={self.warmup_iters}: must be in [0, max_iters={self.max_iters})")

    def warmup_factor(self, iteration: int) -> float:
        """LinearLR's multiplier at an iteration (1.0 once warm-up is over)."""
        if self.warmup_iters == 0 or iteration >= self.warmup_iters:
            return 1.0
        if self.warmup_iters == 1:
            return self.start_factor
        return self.start_factor + (1.0 - self.start_factor) * iteration / (self.warmup_iters - 1)

    def lr(self, base_lr: float, iteration: int) -> float:
        """The learning rate of a group with base lr `base_lr` during `iteration`."""
        warm = base_lr * self.warmup_factor(iteration)
        if iteration < self.warmup_iters:
            return warm
        total = self.max_iters - self.warmup_iters - 1
        k = min(iteration - self.warmup_iters, total)
        if total <= 0:
            return warm
        return (warm - self.min_lr) * ((total - k) / total) ** self.power + self.min_lr

    def apply(self, optimizer: Optimizer, iteration: int) -> float:
        """Set every param group's lr for `iteration`; returns the first group's (the backbone) lr."""
        for group in optimizer.param_groups:
            group["lr"] = self.lr(group["initial_lr"], iteration)
        return optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, float | int]:
        """Plain values for the training checkpoint."""
        return asdict(self)

"""The accuracy gate: a variant is accepted when its accuracy ratio to fp32 reaches a threshold."""

from __future__ import annotations

from dataclasses import dataclass

from segopt_core.errors import OptionError

DEFAULT_MIN_MIOU_RATIO = 0.97  # the default gate: a variant keeps at least 97 % of the fp32 mIoU


@dataclass(frozen=True)
class AccuracyGate:
    """Accept a variant when miou_ratio >= min_miou_ratio (default: 97 % of the fp32 mIoU)."""

    min_miou_ratio: float = DEFAULT_MIN_MIOU_RATIO

    def __post_init__(self) -> None:
        if not 0.0 < self.min_miou_ratio <= 1.0:
            raise OptionError(
                f"the accuracy gate must be in (0, 1] (a share of the fp32 mIoU, e.g. 0.97), "
                f"got {self.min_miou_ratio}"
            )

    def decide(self, miou_ratio: float | None) -> tuple[bool | None, str]:
        """(accepted, reason); accepted is None when there is no accuracy number to judge."""
        if miou_ratio is None:
            return None, "not evaluated"
        verdict = miou_ratio >= self.min_miou_ratio
        word = "accepted" if verdict else "rejected"
        return verdict, f"{word}: ratio {miou_ratio:.4f} {'>=' if verdict else '<'} {self.min_miou_ratio:.4f}"

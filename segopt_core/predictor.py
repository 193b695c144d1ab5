"""The one predictor interface shared by evaluation, benchmarking and video."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn


@runtime_checkable
class Predictor(Protocol):
    """Preprocessed float32 batch (N,3,H,W) in, float32 logits (N,C,H/4,W/4) out."""

    name: str
    precision: str
    device: str

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass
class TorchPredictor:
    """Eager PyTorch fp32 predictor: the reference every optimized variant is compared with."""

    model: nn.Module
    name: str = "torch"
    precision: str = "fp32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.model = self.model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        return self.model(x).float().cpu().numpy()

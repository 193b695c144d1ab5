"""Resumable training state: model, optimizer, schedule, scaler, RNGs and data position in one atomic file.

Everything is stored as tensors, numbers, strings, lists and dicts, so `torch.load(weights_only=True)`
reads it back without unpickling code (numpy's RNG key travels as an int64 tensor).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segopt_core.atomic import atomic_file
from segopt_core.errors import SegoptError

STATE_VERSION = 1


class ResumeError(SegoptError, ValueError):
    """A training state file that cannot be resumed from (missing, unreadable or from another run)."""


@dataclass(frozen=True)
class DataPosition:
    """Where the data stream stands: the next sample is `order(epoch)[index]`; `iteration` updates done."""

    iteration: int = 0
    epoch: int = 0
    index: int = 0


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) global RNG states as weights_only-loadable values."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the global RNG states saved by `rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": npy["bit_generator"],
            "state": {"key": npy["key"].numpy().astype(np.uint32), "pos": npy["pos"]},
            "has_gauss": npy["has_gauss"],
            "gauss": npy["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """torch.save to a temporary file in the same folder, then os.replace onto `path`."""
    return atomic_file(path, lambda tmp: torch.save(obj, tmp))


def save_state(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: dict[str, Any],
    scaler: torch.amp.GradScaler | None,
    position: DataPosition,
    best: dict[str, Any],
    run: dict[str, Any],
) -> Path:
    """Write the full training state atomically; `run` identifies the run (cell, config) for resume checks."""
    state = {
        "version": STATE_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": dict(schedule),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else {},
        "rng": rng_state(),
        "position": asdict(position),
        "best": dict(best),
        "run": dict(run),
    }
    return atomic_torch_save(state, path)


def load_state(path: Path) -> dict[str, Any]:
    """Read a training state file with weights_only=True; a bad file raises ResumeError naming it."""
    from segopt_core.checkpoints.formats import CheckpointError
    from segopt_core.checkpoints.reading import safe_torch_load

    if not path.is_file():
        raise ResumeError(f"{path}: no training state to resume from; start without --resume")
    try:  # the checkpoints' loader: weights only, one line (a pickle that needs code is refused, not run)
        state = safe_torch_load(path)
    except CheckpointError as exc:
        raise ResumeError(f"cannot resume: {exc}") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ResumeError(f"{path}: not a segopt training state (version {STATE_VERSION})")
    return state


def restore_state(
    state: dict[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
) -> DataPosition:
    """Load weights, optimizer, scaler and RNGs from a state dict; returns the data position to continue."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return DataPosition(**state["position"])

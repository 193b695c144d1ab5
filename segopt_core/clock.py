"""Clock reads for timing: one call, and several callables in alternating rounds (no other segopt import).

The primitives every measurement shares: the benchmark engine, the same-round pairs and the artifact store's
micro-batch choice (which sits below the benchmark layer) all time with these.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def time_call(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    """Seconds one call takes, synchronizing the device before each clock read."""
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def interleaved_ab(
    calls: dict[str, Callable[[], object]],
    rounds: int,
    iters_per_round: int,
    warmup_iters: int = 3,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, list[float]]:
    """Latency samples (s) per named callable, measured in alternating rounds so drift hits all of them.

    Each callable is warmed up once, then each round times `iters_per_round` calls of every callable in
    turn; the order rotates each round so none always runs right after another.
    """
    if rounds < 1 or iters_per_round < 1:
        raise ValueError(f"rounds and iters_per_round must be >= 1 (got {rounds}, {iters_per_round})")
    names = list(calls)
    for name in names:
        for _ in range(warmup_iters):
            time_call(calls[name], sync)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples[name] += [time_call(calls[name], sync) for _ in range(iters_per_round)]
    return samples

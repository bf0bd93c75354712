"""How long a plan takes: batch costs from the calibration, and the order the workers take them in.

Pure functions, shared by the plan (which batch each rank starts with), the ETA printed before
training and its check against the actual time at the end (tests/test_eta.py).
"""

from __future__ import annotations

import heapq
from typing import Mapping, Optional, Sequence

# Seconds a batch costs besides its steps: building the data and the module, the Trainer, the first
# call (measured on the parity groups of the 2-core CPU: 0.5-2 s; a sweep of many small batches
# would be underestimated without it).
BATCH_OVERHEAD_S = 1.5


def ms_per_model_step(measured: Mapping[int, float], size: int) -> float:
    """The calibration's cost per model-step for a batch of `size` models: linear between the two
    measured sizes around it (45 models at K=32 train as 23 + 22), the nearest end outside them."""
    if not measured:
        raise ValueError("no calibration measurements")
    sizes = sorted(measured)
    if size <= sizes[0] or size >= sizes[-1]:
        return measured[sizes[0] if size <= sizes[0] else sizes[-1]]
    hi = next(k for k in sizes if k >= size)
    lo = max(k for k in sizes if k <= size)
    if hi == lo:
        return measured[lo]
    return measured[lo] + (measured[hi] - measured[lo]) * (size - lo) / (hi - lo)


def batch_seconds(n_models: int, steps: int, ms: float) -> float:
    return n_models * steps * ms / 1e3 + BATCH_OVERHEAD_S


def assign(costs: Sequence[float], workers: int) -> list[int]:
    """Owner rank of each batch: longest batch first to the least loaded worker (LPT). Ties go to
    the lower rank, so every rank computes the same assignment from the same costs."""
    owners = [0] * len(costs)
    loads = [(0.0, r) for r in range(workers)]
    heapq.heapify(loads)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, rank = heapq.heappop(loads)
        owners[i] = rank
        heapq.heappush(loads, (load + costs[i], rank))
    return owners


def makespan(costs: Sequence[float], owners: Sequence[int], workers: int) -> float:
    """Wall time when each worker trains its own batches one after another."""
    loads = [0.0] * workers
    for cost, rank in zip(costs, owners, strict=True):
        loads[rank] += cost
    return max(loads, default=0.0)


def fmt_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"

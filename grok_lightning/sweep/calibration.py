"""Calibration: how many models per batch, measured on this device."""

from __future__ import annotations

import math
import statistics
import time
from typing import Sequence

import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig
from rich.console import Console

from grok_lightning.sweep.batch import batch_config, fit_batch, padded
from grok_lightning.sweep.spec import Group, Model


class _StepTimer(Callback):
    """Times each training_step call after the warmup (seconds per optimiser step, one sample per
    call); stops the fit once max_seconds are measured. `clock` is injectable for tests."""

    def __init__(self, device: torch.device, warmup_calls: int, max_seconds: float, clock=time.perf_counter):
        super().__init__()
        self.device, self.warmup_calls, self.max_seconds = device, warmup_calls, max_seconds
        self.clock = clock
        self.calls = 0
        self.seconds = 0.0
        self.samples: list[float] = []
        self._t0 = 0.0

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._sync()
        self._t0 = self.clock()
        self._step0 = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._sync()
        seconds = self.clock() - self._t0
        self.calls += 1
        if self.calls > self.warmup_calls and trainer.global_step < trainer.max_steps:  # the last call logs
            self.seconds += seconds
            self.samples.append(seconds / max(1, trainer.global_step - self._step0))
            if self.seconds > self.max_seconds:
                trainer.should_stop = True


def measure_ms_per_model_step(
    cfg: DictConfig, models: Sequence[Model], device: torch.device, cal, clock=time.perf_counter
) -> float:
    """Median over the timed calls of one fit: one slow call (another process) does not move it."""
    spc = cfg.train.steps_per_call
    calls = math.ceil(cal.warmup_steps / spc) + math.ceil(cal.steps / spc) + 1  # +1: the logging last call
    steps = calls * spc
    cfg = batch_config(cfg, max_steps=steps, log_every=steps, step_cap=0)  # a fixed budget
    timer = _StepTimer(device, math.ceil(cal.warmup_steps / spc), cal.max_seconds, clock)
    fit_batch(cfg, models, device, [timer])
    return 1e3 * statistics.median(timer.samples or [0.0]) / len(models)


def candidate_sizes(n: int) -> list[int]:
    """1, 2, 4, ... below n, then n."""
    sizes = [2**i for i in range(int(math.log2(n)) + 1) if 2**i < n]
    return sizes + [n]


def choose_k(measured: dict, tolerance: float) -> int:
    """The smallest K whose cost is within `tolerance` of the cheapest: near-ties between sizes
    (a flat curve) resolve the same way on every run instead of following the noise."""
    best = min(measured.values())
    return min(k for k, v in measured.items() if v <= best * (1 + tolerance))


def calibrate(
    group: Group, cap: int, device: torch.device, cal, console: Console, measure=None, tag: str = ""
) -> dict:
    """ms per model-step for every candidate K in 2..cap, each the least of `cal.repeats` medians;
    stops early only when the device runs out of memory. K = choose_k of what was measured.
    Each K is timed as trained, with its padding copy (`padded`). K = 1 is not a candidate: it
    trains two models, as K = 2 does, for one result, so it is never cheaper per model than K = 2."""
    measure = measure or measure_ms_per_model_step
    measured: dict[int, float] = {}
    for k in [k for k in candidate_sizes(cap) if k > 1]:
        sample = padded([group.models[i % len(group.models)] for i in range(k)])  # as trained
        try:
            per_model = min(measure(group.cfg, sample, device, cal) for _ in range(cal.repeats))
            measured[k] = per_model * len(sample) / k  # per real model-step: the copy is overhead
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
    chosen = choose_k(measured, cal.tolerance) if measured else 2  # not even K = 2 fits: try it anyway
    console.print(
        f"{tag}  calibration {group.key}: ms per model-step (least of {cal.repeats} medians) "
        + ", ".join(f"K={k}: {v:.3g}" for k, v in measured.items())
        + f" -> K={chosen}"
    )
    return {"ms_per_model_step": {str(k): v for k, v in measured.items()}, "K": chosen}

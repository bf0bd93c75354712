"""What this machine can run: the accelerator asked for, one device, and a rough memory estimate
checked before anything is built or written."""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig, OmegaConf

from grok_lightning import config as C
from grok_lightning.tasks import TASKS


def check_machine(cfg: DictConfig) -> None:
    """Refuse, before anything is built or written, what this machine cannot run."""
    acc = cfg.train.accelerator
    if acc in ("gpu", "cuda") and not torch.cuda.is_available():
        raise C.ConfigError(f"train.accelerator={acc}: no CUDA GPU on this machine (use auto or cpu)")
    if acc == "mps" and not torch.backends.mps.is_available():
        raise C.ConfigError("train.accelerator=mps: MPS is not available on this machine (use auto or cpu)")
    if cfg.train.devices != 1:
        raise C.ConfigError(
            f"train.devices={cfg.train.devices}: a single run trains on one device "
            "(a sweep spreads its models over several)"
        )
    need, limit = estimated_bytes(cfg), memory_limit(cfg)
    if need > limit:
        key = _largest_size_key(cfg)
        raise C.ConfigError(
            f"{key}={OmegaConf.select(cfg, key)}: the model and data need ~{need / 2**30:.3g} GiB, "
            f"more than the {limit / 2**30:.3g} GiB of memory here"
        )


def estimated_bytes(cfg: DictConfig) -> float:
    """A rough upper bound of a single run's memory, float64 throughout: what the task estimates
    (Task.memory_elements; 0 where it has no estimate)."""
    estimate = TASKS[cfg.task].memory_elements
    return 8.0 * estimate(cfg) if estimate is not None else 0.0


def memory_limit(cfg: DictConfig) -> float:
    if cfg.train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(0).total_memory)
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _largest_size_key(cfg: DictConfig) -> str:
    """The size key (the task's size_keys) whose schema default would shrink the estimate most:
    the one to name."""
    task = TASKS[cfg.task]
    schema = OmegaConf.structured(task.config_class)
    best, best_need = (task.size_keys or ("model",))[0], float("inf")
    for key in task.size_keys:
        default = OmegaConf.select(schema, key, default=None)
        if default is None:
            continue
        trial = cfg.copy()
        OmegaConf.update(trial, key, min(default, OmegaConf.select(cfg, key)))
        if (need := estimated_bytes(trial)) < best_need:
            best, best_need = key, need
    return best

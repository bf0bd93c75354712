"""What this machine can run: the accelerator asked for, one device, and a rough memory estimate
checked before anything is built or written."""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig, OmegaConf

from grok_lightning import config as C

SIZE_KEYS = ("data.p", "model.d_embed", "model.n_neurons", "data.n_bits", "data.train_size", "data.test_size")


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
    """A rough upper bound of a single run's memory: data, activations and logits (forward and
    backward), parameters with gradients and Adam moments; float64 throughout."""
    d, m = cfg.data, cfg.model
    if "p" in d:  # modadd, fixed_embed
        p = d.p
        pairs = p * (p + 1) / 2 if d.symmetric else p * p
        params = 2 * p * m.d_embed + 3 * m.d_embed * m.n_neurons + 2 * p * m.n_neurons
        elements = 3 * pairs * (2 * p + m.n_neurons + p) + 4 * params
    else:  # parity
        rows = d.train_size + d.test_size
        elements = 3 * rows * (d.n_bits + m.n_neurons + 2) + 4 * (d.n_bits + 2) * m.n_neurons
    return 8.0 * elements


def memory_limit(cfg: DictConfig) -> float:
    if cfg.train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(0).total_memory)
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _largest_size_key(cfg: DictConfig) -> str:
    """The size key whose schema default would shrink the estimate most: the one to name."""
    from grok_lightning.tasks import TASKS

    schema = OmegaConf.structured(TASKS[cfg.task].config_class)
    best, best_need = SIZE_KEYS[0], float("inf")
    for key in SIZE_KEYS:
        default = OmegaConf.select(schema, key, default=None)
        if default is None:
            continue
        trial = cfg.copy()
        OmegaConf.update(trial, key, min(default, OmegaConf.select(cfg, key)))
        if (need := estimated_bytes(trial)) < best_need:
            best, best_need = key, need
    return best

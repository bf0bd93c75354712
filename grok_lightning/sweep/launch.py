"""Launchers: which share of the batches this process takes, on which device."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from grok_lightning import config as C
from grok_lightning.sweep.workers import ENV_WORKER


@dataclass(frozen=True)
class Launch:
    launcher: str  # none | workers (grok_lightning.sweep.workers) | torchelastic | slurm | lsf
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int = 1  # processes sharing this machine: part of the calibration's key


def detect_launch(expected_world_size: int = 0) -> Launch:
    """Ranks from Lightning's cluster environments. torchrun (and `fabric run`, which uses it) comes
    first: inside a one-task srun allocation its numbers, not SLURM's, describe the processes."""
    from lightning.fabric.plugins.environments import (
        LSFEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    launch = Launch("none", 0, 1, 0)
    for name, env_class in (
        ("torchelastic", TorchElasticEnvironment),
        ("slurm", SLURMEnvironment),
        ("lsf", LSFEnvironment),
    ):
        try:
            if not env_class.detect():
                continue
            env = env_class()
            if name == "torchelastic" and os.environ.get(ENV_WORKER):
                name = "workers"
            local = os.environ.get("LOCAL_WORLD_SIZE" if name != "slurm" else "SLURM_NTASKS_PER_NODE", "1")
            local_world = int(local) if local.isdigit() else 1  # SLURM may say "2(x3)": unknown, 1
            launch = Launch(name, env.global_rank(), env.world_size(), env.local_rank(), local_world)
        except (KeyError, ValueError, RuntimeError) as exc:  # a variable missing, not a number, or refused
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise C.ConfigError(
                f"{name} launcher detected but its environment is not usable: {msg}"
            ) from None
        break
    if not (launch.world_size >= 1 and 0 <= launch.rank < launch.world_size and launch.local_rank >= 0):
        raise C.ConfigError(
            f"{launch.launcher} launcher reports rank {launch.rank} of world size {launch.world_size} "
            f"(local rank {launch.local_rank}): inconsistent, refusing to run"
        )
    if expected_world_size and expected_world_size != launch.world_size:
        how = (
            "one process"
            if launch.launcher == "none"
            else f"{launch.world_size} processes by {launch.launcher}"
        )
        raise C.ConfigError(
            f"world_size={expected_world_size} in the sweep config but started as {how}; launch "
            f"{expected_world_size} processes (e.g. torchrun --nproc_per_node={expected_world_size}) "
            "or set world_size=0"
        )
    return launch


def device_for(cfg: DictConfig, launch: Launch) -> torch.device:
    accel = cfg.train.accelerator
    if accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise C.ConfigError(f"train.accelerator={accel} but no CUDA device is available")
        n = torch.cuda.device_count()
        if n == 1:  # one GPU visible: the launcher bound one per task (srun --gpus-per-task=1)
            return torch.device("cuda", 0)
        if launch.local_rank >= n:
            raise C.ConfigError(f"local rank {launch.local_rank} but this process sees only {n} CUDA devices")
        return torch.device("cuda", launch.local_rank)
    if accel == "mps":
        return torch.device("mps")
    return torch.device("cpu")


def device_key(device: torch.device) -> str:
    """What a calibration measured on: the same key means the same speeds can be assumed."""
    if device.type == "cuda":
        return f"cuda/{torch.cuda.get_device_name(device)}"
    isa = torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else ""
    return f"{device.type}/{platform.machine()}/{isa}/threads={torch.get_num_threads()}"


def trainer_kwargs(device: torch.device) -> dict:
    from lightning.pytorch.strategies import SingleDeviceStrategy

    # An explicit single-device strategy: under torchrun/srun Lightning would otherwise read the
    # launcher's world size and want DDP; sweep ranks share no gradients.
    accelerator = {"cuda": "gpu"}.get(device.type, device.type)
    devices = [device.index] if device.type == "cuda" else 1
    return dict(accelerator=accelerator, devices=devices, strategy=SingleDeviceStrategy(device=device))

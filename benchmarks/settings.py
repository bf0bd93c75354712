"""What the benchmarks share: the sweep's parity settings and shapes, the main modadd shape, and the
size of one bench run (full or --quick)."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

from omegaconf import OmegaConf

from grok_lightning import config as C
from grok_lightning.sweep.spec import CalibrationConfig, Model

# configs/sweeps/parity_phase.yaml's base, and the log cadence of its 20,000-step runs
PARITY_SWEEP_SETTINGS = [
    "optim.regularization=l2",
    "optim.lr=0.003",
    "optim.beta1=0.99",
    "optim.beta2=0.98",
    "data.test_size=5000",
]
PARITY_CADENCE = ["train.log_every=40", "train.checkpoint_every=200"]
PARITY_SHAPES = [(16, 1000), (64, 1250), (258, 1750)]  # (n_neurons, train_size)
PARITY_SWEEP_STEPS = 20_000  # the sweep's train.max_steps (what train.compile=auto decides for)
# the compile table's further shapes of the sweep's grid (full scale): points around auto's threshold
COMPILE_EXTRA_SHAPES = [(16, 1750), (32, 750), (32, 1000), (64, 750), (32, 1750), (128, 750), (128, 1250)]
WEIGHT_DECAYS = [0.01, 0.03, 0.1, 0.3, 1.0]
GROUP_SEEDS = 9  # 9 seeds x 5 weight decays: the sweep's 45 models per group
# The main preset's own cadences at 50,000 steps, kept for shorter runs; a fixed budget (the preset's
# adaptive one would extend a short timed run up to its 150,000-step cap)
MODADD_CADENCE = ["train.log_every=100", "train.checkpoint_every=500", "train.step_cap=0"]
MODADD_BATCH = 8  # the batched modadd row: 8 models of the main shape
MODADD_MAIN_STEPS = 50_000  # the main preset's nominal budget


@dataclass(frozen=True)
class Scale:
    """How long each benchmark runs: the full numbers, or --quick to check that everything runs."""

    steps: int = 2000  # optimiser steps per timed fit of the throughput table
    group_models: int = 45  # models per group the calibration chooses K for (the sweep's group size)
    speedup_steps: int = 1000  # per model, both sides of the sweep speed-up
    sequential_runs: int = 6  # single runs timed end to end in the sweep speed-up
    overhead_steps: int = 5000  # per run of the Lightning-vs-plain comparison
    # calibration (steps, warmup_steps, max_seconds, repeats): the sweep's own for the throughput
    # table's K; a shorter one for the calibration check, which re-measures what it picks
    calibration: tuple = (100, 20, 2.0, 3)
    check_calibration: tuple = (40, 20, 0.6, 3)
    compile_steps: int = 200  # timed steps per side of the torch.compile comparison
    compile_backend: str = (
        "inductor"  # --quick: "eager" (graph capture only; inductor's C++ build takes ~1 min)
    )
    quick: bool = False


def calibration_config(fields: tuple):
    steps, warmup, seconds, repeats = fields
    cfg = CalibrationConfig(steps=steps, warmup_steps=warmup, max_seconds=seconds, repeats=repeats)
    return OmegaConf.structured(cfg)


FULL = Scale()
QUICK = Scale(
    steps=20,
    group_models=4,
    speedup_steps=20,
    sequential_runs=2,
    overhead_steps=20,
    calibration=(10, 10, 0.05, 1),
    check_calibration=(10, 10, 0.05, 1),
    compile_steps=5,
    compile_backend="eager",
    quick=True,
)


def parity_config(n_neurons: int, train_size: int, steps: int, extra: tuple = ()):
    overrides = [*PARITY_SWEEP_SETTINGS, *PARITY_CADENCE, f"model.n_neurons={n_neurons}"]
    return C.load(
        "parity", None, [*overrides, f"data.train_size={train_size}", f"train.max_steps={steps}", *extra]
    )


def parity_group(n_neurons: int, train_size: int, steps: int) -> tuple:
    """(config, the 45 models of one sweep group: 9 seeds x 5 weight decays)."""
    cfg = parity_config(n_neurons, train_size, steps)
    models = [
        Model(id=f"{seed}-{wd}", point=0, seed=seed, lr=cfg.optim.lr, weight_decay=wd)
        for seed, wd in itertools.product(range(GROUP_SEEDS), WEIGHT_DECAYS)
    ]
    return cfg, models


def modadd_main(steps: int, n_models: int = 1) -> tuple:
    """(main preset config, n models of its shape). All start from the preset's stored seed: other
    seeds of init=original would need a jax draw, and the shape is what is timed."""
    cfg = C.load("modadd", "main", [*MODADD_CADENCE, f"train.max_steps={steps}"])
    model = Model(
        id="main", point=0, seed=cfg.train.seed, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    return cfg, [model] * n_models


def quiet_lightning() -> None:
    """One Trainer per timed fit: Lightning's "GPU available" banner would repeat for every one."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)

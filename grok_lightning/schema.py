"""The config sections every task shares, and the checks on them. Imports no task.

A task's full schema is a `RunConfig` subclass adding its own `data` and `model` sections
(grok_lightning/tasks/); `grok_lightning.config` merges YAML and overrides onto it and validates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


class ConfigError(ValueError):
    """A bad config: the message is one line that names the offending key or file."""


# key -> allowed values, or key -> (predicate, what must hold); a task adds its own for data.* and model.*.
Choices = dict[str, tuple[str, ...]]
Rules = dict[str, tuple[Callable[[Any], bool], str]]
AT_LEAST_ONE = (lambda v: v >= 1, "must be >= 1")  # the commonest rule: a count or size


@dataclass
class OptimConfig:
    regularization: str = "l2"  # l2: AdamW decoupled decay | l1: Adam on loss + wd*sum|p| |
    # coupled_l2: torch.optim.Adam's weight_decay, wd*p added to the gradient (Grokfast's runs) | none
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-8
    # Grokfast (Lee et al. 2024): g + lamb * (slow part of g) before the Adam step
    # (docs/experiments.md, "Grokfast")
    grokfast: str = "none"  # none | ema: mu <- alpha*mu + (1-alpha)*g | ma: mean of the last `window` g
    grokfast_alpha: float = 0.98  # ema's momentum
    grokfast_lamb: float = 2.0  # amplification of the slow part (the reference's MA runs use 5.0)
    grokfast_window: int = 100  # ma's window, in updates (no change until it is full)
    warmup_steps: int = 0  # linear lr warmup: update t (0-based) uses lr * min(t / warmup_steps, 1); 0 = none


@dataclass
class TrainConfig:
    seed: int = 0
    max_steps: int = 50_000  # the nominal budget: always trained
    step_cap: int = 0  # adaptive budget (grok_lightning.fate): a model "not yet" generalised at
    # max_steps trains on up to this many steps; 0 = max_steps, a fixed budget
    stop_margin: int = 0  # steps trained past a generalisation found in the extension; 0 = max_steps // 10
    stop_when_generalised: bool = False  # stop stop_margin steps after generalising, even within max_steps
    precision: str = "32"  # 32 | 64 | original (embedding float32, Linears and forward float64)
    # | 64_mm32 (float64 parameters, float32 matrix products) | tf32 | bf16 (float32, matrix-product
    # operands rounded to TF32's 10 / bfloat16's 7 mantissa bits as on a GPU's tensor cores)
    log_every: int = 0  # 0: max_steps // 500, the original's cadence
    checkpoint_every: int = 0  # 0: max_steps // 100
    keep_checkpoints: int = 1  # step=<N>.ckpt files kept besides last.ckpt, newest first; -1: all
    steps_per_call: int = 10  # optimiser steps per Lightning training_step (cuts loop overhead)
    batch_size: int = 0  # 0: full batch (every original preset) | n: minibatches of n, reshuffled each
    # epoch, the last one smaller (grok_lightning.tasks.datamodule); train/loss is then measured on the
    # whole training set after the update, as the accuracies
    accelerator: str = "auto"
    devices: int = 1
    flush_denormal: bool = True  # CPU only: denormal floats late in training are very slow on Intel
    cpu_threads: int = 1  # torch threads on CPU; 0 = torch's default. Tiny models gain nothing from
    # more, and lose badly when another process shares the cores.
    progress_bar: bool = True
    # auto: torch.compile the forward and loss where it was measured to pay (large parity groups, at
    # float32, long runs); on: always; off: never (docs/experiments.md, "Compiled groups")
    compile: str = "auto"


@dataclass
class CallbackToggle:
    """One analysis callback: on/off and its cadences in optimiser steps. 0: the callback's
    default; a negative value: never during training (only its end-of-run figures)."""

    enabled: bool = True
    scalars_every: int = 0  # scalar measures; default max(max_steps // 50, 100); unused by image-only ones
    frames_every: int = 0  # image frames; default max(max_steps // 10 or 20, 1000) (stars: end only;
    # trajectory: weight frames for the explorer, default max_steps // 200)


@dataclass
class DFTSparsityToggle(CallbackToggle):
    top_k: int = 5  # frequencies counted by fourier/*_top{k}_energy


@dataclass
class CallbacksConfig:
    """The analysis callbacks (callbacks/); each runs only where the task declares its analysis."""

    # fourier/ scalars, DFT heatmaps
    dft_sparsity: DFTSparsityToggle = field(default_factory=DFTSparsityToggle)
    weight_heatmaps: CallbackToggle = field(default_factory=CallbackToggle)  # figures/weights frames
    loss_gap: CallbackToggle = field(default_factory=CallbackToggle)  # gap/ scalars, loss curves
    fourier_stars: CallbackToggle = field(default_factory=CallbackToggle)  # stars + logit waves
    progress_measures: CallbackToggle = field(default_factory=CallbackToggle)  # progress/ Nanda et al.
    bit_mass: CallbackToggle = field(default_factory=CallbackToggle)  # parity: |W_input| on bits 1..k
    trajectory: CallbackToggle = field(default_factory=CallbackToggle)  # explorer frames (max_steps // 200)
    # model.kind=transformer only: circuit/ scalars (embedding Gini, restricted / excluded loss) and
    # its end-of-run figures (callbacks/transformer_circuit.py)
    transformer_circuit: CallbackToggle = field(default_factory=CallbackToggle)


@dataclass
class OutcomeConfig:
    """The article's phase-rule thresholds, on the logged loss scale (docs/experiments.md,
    "Outcome classes")."""

    loss_threshold: float = 1e-5
    ratio_threshold: float = 5e4
    loss_floor: float = 0.0  # the rule reads max(loss, floor); 0 = exact losses. configs/parity.yaml
    # sets the article's float32 floor 2^-23 (grok_lightning.outcome.ARTICLE_FLOAT32_FLOOR)
    fate_window: int = 0  # steps over which the fate (not yet / stuck) reads the test loss's trend;
    # 0 = max_steps // 5


@dataclass
class RunConfig:
    task: str = "???"
    preset: str = "???"
    logger: str = "auto"  # auto: W&B (online if logged in, else offline) + CSV | wandb | csv
    wandb_project: str = "grok_lightning"
    run_root: str = "runs"
    resume: Optional[str] = None  # a run directory to continue from its last.ckpt
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    outcome: OutcomeConfig = field(default_factory=OutcomeConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)


CHOICES: Choices = {
    "logger": ("auto", "wandb", "csv"),
    "optim.regularization": ("l2", "l1", "coupled_l2", "none"),
    "optim.grokfast": ("none", "ema", "ma"),
    "train.precision": ("32", "64", "original", "64_mm32", "tf32", "bf16"),
    "train.accelerator": ("auto", "cpu", "gpu", "cuda", "mps"),
    # YAML reads an unquoted on / off as a boolean, which this str key stores as True / False
    "train.compile": ("auto", "on", "off", "True", "False"),
}

RULES: Rules = {
    "optim.lr": (lambda v: 0 < v < 1e38, "must be in (0, 1e38): one step of that size overflows float32"),
    "optim.weight_decay": (lambda v: v >= 0, "must be >= 0"),
    "optim.beta1": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "optim.beta2": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "optim.eps": (lambda v: v > 0, "must be > 0"),
    "optim.grokfast_alpha": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "optim.grokfast_lamb": (lambda v: v >= 0, "must be >= 0"),
    "optim.grokfast_window": AT_LEAST_ONE,
    "optim.warmup_steps": (lambda v: v >= 0, "must be >= 0 (0 = no warmup)"),
    "train.max_steps": AT_LEAST_ONE,
    "train.log_every": (lambda v: v >= 0, "must be >= 0 (0 = max_steps // 500)"),
    "train.checkpoint_every": (lambda v: v >= 0, "must be >= 0 (0 = max_steps // 100)"),
    "train.keep_checkpoints": (lambda v: v >= -1, "must be >= -1 (-1 = keep every step=<N>.ckpt)"),
    "train.steps_per_call": AT_LEAST_ONE,
    "train.batch_size": (lambda v: v >= 0, "must be >= 0 (0 = full batch)"),
    "train.step_cap": (lambda v: v >= 0, "must be >= 0 (0 = max_steps: a fixed budget)"),
    "train.stop_margin": (lambda v: v >= 0, "must be >= 0 (0 = max_steps // 10)"),
    "outcome.fate_window": (lambda v: v >= 0, "must be >= 0 (0 = max_steps // 5)"),
    "train.devices": AT_LEAST_ONE,
    "train.cpu_threads": (
        lambda v: 0 <= v <= (os.cpu_count() or 1),
        f"must be in [0, {os.cpu_count() or 1}] (0 = torch's default; the cores of this machine)",
    ),
    "callbacks.dft_sparsity.top_k": AT_LEAST_ONE,
    "train.seed": (lambda v: 0 <= v < 2**32, "must be in [0, 2**32)"),
    "outcome.loss_threshold": (lambda v: v > 0, "must be > 0"),
    "outcome.ratio_threshold": (lambda v: v > 0, "must be > 0"),
    "outcome.loss_floor": (lambda v: 0 <= v < 1, "must be in [0, 1) (0 = exact losses)"),
}

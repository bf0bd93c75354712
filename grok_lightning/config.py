"""Typed run configuration: task YAML + preset YAML + key=value overrides, checked once.

`load(task, preset, overrides)` returns a validated OmegaConf config backed by the task's dataclass
schema. Every problem (unknown task/preset/key, wrong type, impossible value) raises `ConfigError`
with one line naming the key; the CLI turns it into exit code 2 before anything is written.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONFIG_DIR = Path(os.environ.get("GROK_CONFIG_DIR", Path(__file__).resolve().parent.parent / "configs"))


class ConfigError(ValueError):
    """A bad config: the message is one line that names the offending key or file."""


# ----------------------------------------------------------------------------------------------
# Sections shared by every task
@dataclass
class OptimConfig:
    regularization: str = "l2"  # l2: AdamW decoupled decay | l1: Adam on loss + wd*sum|p| | none
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-8


@dataclass
class TrainConfig:
    seed: int = 0
    max_steps: int = 50_000
    precision: str = "32"  # 32 | 64 | original (embedding float32, Linears and forward float64)
    # | 64_mm32 (float64 parameters, float32 matrix products)
    log_every: int = 0  # 0: max_steps // 500, the original's cadence
    checkpoint_every: int = 0  # 0: max_steps // 100
    keep_checkpoints: int = 3  # step=<N>.ckpt files kept besides last.ckpt, newest first; -1: all
    steps_per_call: int = 10  # optimiser steps per Lightning training_step (cuts loop overhead)
    accelerator: str = "auto"
    devices: int = 1
    flush_denormal: bool = True  # CPU only: denormal floats late in training are very slow on Intel
    cpu_threads: int = 1  # torch threads on CPU; 0 = torch's default. Tiny models gain nothing from
    # more, and lose badly when another process shares the cores.
    progress_bar: bool = True


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


@dataclass
class OutcomeConfig:
    """The article's phase-rule thresholds, on the logged loss scale (docs/experiments.md,
    "Outcome classes")."""

    loss_threshold: float = 1e-5
    ratio_threshold: float = 5e4


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


# ----------------------------------------------------------------------------------------------
# Modular addition (and the fixed circular embedding, which is modular addition with E constant)
@dataclass
class ModAddData:
    p: int = 67
    symmetric: bool = True  # only pairs a <= b, as every original preset
    train_fraction: float = 0.4


@dataclass
class FactoredMLPConfig:
    d_embed: int = 500
    n_neurons: int = 24
    embed: str = "tied"  # tied | input_tied | untied | fixed (constant cos/sin embedding)
    tied_hidden: bool = True
    collapsed_hidden: bool = False
    collapsed_out: bool = False
    activation: str = "relu"  # relu | square
    freqs: list[int] = field(default_factory=lambda: [1])  # embed=fixed: d_embed = 2 * len(freqs)
    init: str = "torch"  # torch: PyTorch's generator | original: the JAX/Haiku draw of the notebooks
    loss_scale: str = "per_class"  # per_class: CE / p as the original logged | mean: plain CE


@dataclass
class ModAddConfig(RunConfig):
    data: ModAddData = field(default_factory=ModAddData)
    model: FactoredMLPConfig = field(default_factory=FactoredMLPConfig)


# ----------------------------------------------------------------------------------------------
# Sparse parity (docs/experiments.md, "Sparse parity"): label = parity of the first k of n_bits random bits
@dataclass
class ParityData:
    n_bits: int = 30
    k: int = 3
    train_size: int = 1200  # fixed training set, full batch
    test_size: int = 5000  # disjoint from the training set


@dataclass
class ParityMLPConfig:
    n_neurons: int = 32
    init: str = "torch"  # only torch: the original parity draws are not known


@dataclass
class ParityConfig(RunConfig):
    data: ParityData = field(default_factory=ParityData)
    model: ParityMLPConfig = field(default_factory=ParityMLPConfig)


# ----------------------------------------------------------------------------------------------
CHOICES = {
    "logger": ("auto", "wandb", "csv"),
    "optim.regularization": ("l2", "l1", "none"),
    "train.precision": ("32", "64", "original", "64_mm32"),
    "train.accelerator": ("auto", "cpu", "gpu", "cuda", "mps"),
    "model.embed": ("tied", "input_tied", "untied", "fixed"),
    "model.activation": ("relu", "square"),
    "model.init": ("torch", "original"),
    "model.loss_scale": ("per_class", "mean"),
}

# key -> (predicate, what must hold); checked only where the key exists in the task's schema.
RULES = {
    "data.p": (lambda v: v >= 2, "must be >= 2"),
    "data.train_fraction": (lambda v: 0 < v < 1, "must be in (0, 1)"),
    "data.n_bits": (lambda v: 1 <= v <= 62, "must be in [1, 62] (sequences are drawn as int64 codes)"),
    "data.k": (lambda v: v >= 1, "must be >= 1"),
    "data.train_size": (lambda v: v >= 1, "must be >= 1"),
    "data.test_size": (lambda v: v >= 1, "must be >= 1"),
    "model.d_embed": (lambda v: v >= 1, "must be >= 1"),
    "model.n_neurons": (lambda v: v >= 1, "must be >= 1"),
    "optim.lr": (lambda v: 0 < v < 1e38, "must be in (0, 1e38): one step of that size overflows float32"),
    "optim.weight_decay": (lambda v: v >= 0, "must be >= 0"),
    "optim.beta1": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "optim.beta2": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "optim.eps": (lambda v: v > 0, "must be > 0"),
    "train.max_steps": (lambda v: v >= 1, "must be >= 1"),
    "train.log_every": (lambda v: v >= 0, "must be >= 0 (0 = max_steps // 500)"),
    "train.checkpoint_every": (lambda v: v >= 0, "must be >= 0 (0 = max_steps // 100)"),
    "train.keep_checkpoints": (lambda v: v >= -1, "must be >= -1 (-1 = keep every step=<N>.ckpt)"),
    "train.steps_per_call": (lambda v: v >= 1, "must be >= 1"),
    "train.devices": (lambda v: v >= 1, "must be >= 1"),
    "train.cpu_threads": (lambda v: v >= 0, "must be >= 0 (0 = torch's default)"),
    "train.seed": (lambda v: 0 <= v < 2**32, "must be in [0, 2**32)"),
    "outcome.loss_threshold": (lambda v: v > 0, "must be > 0"),
    "outcome.ratio_threshold": (lambda v: v > 0, "must be > 0"),
}


def _task_schemas() -> dict[str, type]:
    from grok_lightning.tasks import TASKS

    return {name: task.config_class for name, task in TASKS.items()}


def available_presets(task: str) -> list[str]:
    folder = CONFIG_DIR / "presets" / task
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _read_yaml(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # yaml syntax errors come in many classes
        raise ConfigError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return cfg


def _one_line(exc: OmegaConfBaseException) -> str:
    """OmegaConf messages span several lines (full_key, object_type...); keep what names the key."""
    msg = str(exc).splitlines()[0].strip()
    key = getattr(exc, "full_key", None)
    if key and key not in msg:
        msg = f"{key}: {msg}"
    return msg


def _merge(base: DictConfig, layer: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, layer)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{source}: {_one_line(exc)}") from None


def parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r} is not of the form key=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except Exception as exc:
        raise ConfigError(f"cannot parse overrides {overrides}: {str(exc).splitlines()[0]}") from None


def load(task: str, preset: Optional[str] = None, overrides: Optional[list[str]] = None) -> DictConfig:
    """Build the validated config of one run: schema <- configs/<task>.yaml <- preset <- overrides."""
    schemas = _task_schemas()
    if task not in schemas:
        raise ConfigError(f"unknown task {task!r}; available tasks: {', '.join(sorted(schemas))}")
    task_yaml = _read_yaml(CONFIG_DIR / f"{task}.yaml")
    preset = preset or task_yaml.pop("default_preset", None)
    task_yaml.pop("default_preset", None)
    presets = available_presets(task)
    if preset not in presets:
        raise ConfigError(
            f"unknown preset {preset!r} for task {task!r}; available presets: {', '.join(presets)}"
        )

    cfg = OmegaConf.structured(schemas[task])
    cfg = _merge(cfg, task_yaml, f"configs/{task}.yaml")
    cfg = _merge(cfg, _read_yaml(CONFIG_DIR / "presets" / task / f"{preset}.yaml"), f"preset {preset}")
    layer = parse_overrides(list(overrides or []))
    for key in ("task", "preset"):
        if key in layer:
            raise ConfigError(f"{key} cannot be overridden here; pass it as {key}=... to the command")
    cfg = _merge(cfg, layer, "override")
    cfg.task, cfg.preset = task, preset
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Value checks the type schema cannot express. Raises ConfigError naming the first bad key."""
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        raise ConfigError(f"missing value for {sorted(missing)[0]}")
    for key, choices in CHOICES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and str(value) not in choices:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")
    for key, (ok, rule) in RULES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value} must be a finite number")
        if not ok(value):
            raise ConfigError(f"{key}={value} {rule}")
    every = cfg.train.checkpoint_every
    if every and every % cfg.train.steps_per_call:
        raise ConfigError(
            f"train.checkpoint_every={every} must be a multiple of "
            f"train.steps_per_call={cfg.train.steps_per_call}"
        )
    if "n_bits" in cfg.data:  # parity
        n_bits, data = cfg.data.n_bits, cfg.data
        if data.k > n_bits:
            raise ConfigError(f"data.k={data.k} must be <= data.n_bits={n_bits}")
        if 2**n_bits - data.train_size < data.test_size:
            raise ConfigError(
                f"data.test_size={data.test_size} cannot be drawn disjoint from "
                f"data.train_size={data.train_size} sequences: only 2**{n_bits} = {2**n_bits} exist"
            )
    if "model" in cfg and cfg.model.get("embed") == "fixed":
        if not cfg.model.freqs or any(f < 1 or f > (cfg.data.p - 1) // 2 for f in cfg.model.freqs):
            raise ConfigError(f"model.freqs={list(cfg.model.freqs)} must be frequencies in 1..(p-1)//2")
        collapsed = cfg.model.collapsed_hidden and cfg.model.collapsed_out
        if collapsed and 2 * len(cfg.model.freqs) == cfg.model.n_neurons:
            raise ConfigError(
                "model.embed=fixed with collapsed_hidden, collapsed_out and n_neurons == 2 * len(freqs) "
                "leaves nothing to train"
            )


def callback_switches(enabled: bool) -> list[str]:
    """Overrides that switch every analysis callback on or off."""
    toggles = [name for name, value in vars(CallbacksConfig()).items() if isinstance(value, CallbackToggle)]
    return [f"callbacks.{name}.enabled={str(enabled).lower()}" for name in toggles]


def log_every(cfg: DictConfig) -> int:
    return cfg.train.log_every or _cadence(cfg, 500)


def checkpoint_every(cfg: DictConfig) -> int:
    return cfg.train.checkpoint_every or _cadence(cfg, 100)


def _cadence(cfg: DictConfig, count: int) -> int:
    """max_steps // count, rounded to a whole number of training_step calls (at least one)."""
    spc = cfg.train.steps_per_call
    return max(spc, (cfg.train.max_steps // count) // spc * spc)


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg)

"""Sweeps: `python -m grok_lightning.sweep sweep=<name> [key=value ...]`.

    configs/sweeps/<name>.yaml -> grid x seeds = models -> groups (same config except lr, weight decay
    and seed: the core batches exactly those per model) -> batches of K models (K measured per group
    on this device) -> each launcher rank trains batches i % world_size == rank, one GrokModule and a
    single-device Trainer per batch -> batches/<id>.json -> results.csv, phase_diagram.png, W&B.

Arguments: `sweep=` a name in configs/sweeps/ or a path to a YAML file; keys of the sweep file
(`seeds=3`, `grid.model.n_neurons=[16,32]`, `grid.n_neurons=[16,32]` for short, `out_dir=...`,
`world_size=2`); any other key is a run-config override applied to every model
(`train.max_steps=2000`, the same as `base.train.max_steps=2000`).

Restarts: a batch file is written atomically when its batch is done, and a rerun into the same
directory skips it. Each batch trains under a lock (locks/<batch>.lock, flock: freed when its
process dies): a second sweep started into the same directory leaves the batches the first holds
to it, trains the rest, then waits for those (and trains any whose holder died). wall_time.json
sums the batch files' training time over every invocation. A batch trains with a copy of its last
model appended (`_padded`): a model's results do not depend on which batch it was in (see there
for how far that holds). The batching plan (plans/<id>.json) is written once per sweep and device
by rank 0 and read by every rank, so all ranks agree on the batches even when a plan is reused.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:
    # Run as a file (`fabric run grok_lightning/sweep.py` takes a script path): drop this folder
    # from the path so that config.py, model.py ... can never shadow top-level modules.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import contextlib
import fcntl
import hashlib
import itertools
import json
import logging
import math
import platform
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from grok_lightning import config as C
from grok_lightning import histories, runs
from grok_lightning.module import METRICS
from grok_lightning.outcome import OUTCOMES
from grok_lightning.tasks import TASKS
from grok_lightning.train import build_module, run_summary
from grok_lightning.trainer import build_trainer, wandb_mode

SWEEP_DIR = C.CONFIG_DIR / "sweeps"
USAGE = """usage: python -m grok_lightning.sweep sweep=<name or file.yaml> [key=value ...]
sweeps: {sweeps}. e.g. sweep=parity_phase seeds=3 grid.model.n_neurons=[16,32] train.max_steps=2000
Under a launcher (torchrun, srun, fabric run) every process takes its share of the batches."""

# The only keys that may differ between the models of one batch (per-model vectors in the core).
PER_MODEL_KEYS = ("optim.lr", "optim.weight_decay", "train.seed")
# Keys that say where or how a run is shown, not what it trains: not part of a model's identity.
PRESENTATION_KEYS = (
    "logger",
    "wandb_project",
    "run_root",
    "resume",
    "callbacks",
    "train.progress_bar",
    "train.cpu_threads",
    "train.accelerator",
    "train.devices",
    "train.checkpoint_every",
)
SUMMARY_COLUMNS = (
    "min_train_loss",
    "min_test_loss",
    "max_ratio",
    "memorise_step",
    "generalise_step",
    "grok_delay_steps",
    "solved_step",
    "verdict",
    "outcome",
    "diverged",
    "final_train_loss",
    "final_test_loss",
    "final_train_acc",
    "final_test_acc",
    "steps",
    "key_frequencies",
    "n_key_frequencies",
)


class SweepError(RuntimeError):
    """A sweep that cannot finish as asked (another rank never delivered, a device is missing)."""


# ----------------------------------------------------------------------------------------------
# Sweep file schema
@dataclass
class CalibrationConfig:
    enabled: bool = True  # false: K = max_models_per_group (0: the whole group)
    steps: int = 100  # timed optimiser steps per candidate K (after warmup)
    warmup_steps: int = 20
    max_seconds: float = 2.0  # stop timing one candidate after this long (big K on a CPU)
    repeats: int = 3  # timed fits per candidate K; its cost is the least of their medians
    tolerance: float = 0.05  # the smallest K within this fraction of the fastest wins (ties do not flip)


@dataclass
class PhaseDiagramConfig:
    x: Optional[str] = None  # grid keys for the axes; None: the first two grid keys with > 1 value
    y: Optional[str] = None
    bars: list = field(default_factory=list)  # grid keys: also stacked outcome bars per combination


@dataclass
class SweepConfig:
    task: str = "???"
    preset: Optional[str] = None  # None: the task's default preset
    description: str = ""
    base: Dict[str, Any] = field(default_factory=dict)  # run-config overrides for every model
    grid: Dict[str, Any] = field(default_factory=dict)  # key -> list of values (cross product)
    seeds: Any = 1  # a count n (seeds 0..n-1) or a list of seeds
    max_models_per_group: int = 0  # 0: no cap beyond what calibration picks
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    world_size: int = 0  # 0: whatever the launcher started; n: refuse any other number of processes
    out_dir: Optional[str] = None  # None: sweeps/<name>
    wait_timeout_s: float = 86400.0  # ranks > 0 wait this long for the plan, rank 0 for the other batches
    phase_diagram: PhaseDiagramConfig = field(default_factory=PhaseDiagramConfig)


SWEEP_FIELDS = set(SweepConfig.__dataclass_fields__)


@dataclass(frozen=True)
class Model:
    id: str
    point: int  # index into Sweep.points
    seed: int
    lr: float
    weight_decay: float


@dataclass
class Group:
    key: str  # short hash of the shared config
    cfg: DictConfig  # the config of its first model (lr / weight decay / seed come per model)
    models: list


@dataclass
class Sweep:
    name: str
    scfg: DictConfig
    base: dict  # dotted run-config key -> value, for every model
    grid: dict  # dotted key -> list of values
    seeds: list
    points: list  # per grid point: {dotted key: value}
    models: list
    groups: list
    out_dir: Path

    @property
    def base_cfg(self) -> DictConfig:
        return self.groups[0].cfg


# ----------------------------------------------------------------------------------------------
# Parsing and validation: everything that can be wrong with the input fails here, before any file.
def _flatten(value: Any, prefix: str = "") -> dict:
    """Nested mapping -> {dotted key: leaf}; lists are leaves."""
    if isinstance(value, (dict, DictConfig)):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: OmegaConf.to_container(value) if isinstance(value, ListConfig) else value}


def _dotlist(values: dict) -> list[str]:
    # JSON is valid YAML flow syntax: config.load parses each value back to the same number/list/string
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def _short_hash(text: str, n: int = 12) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def available_sweeps() -> list[str]:
    return sorted(p.stem for p in SWEEP_DIR.glob("*.yaml")) if SWEEP_DIR.is_dir() else []


def _sweep_file(name: str) -> Path:
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        path = Path(name)
        if not path.is_file():
            raise C.ConfigError(f"sweep={name}: no such file")
        return path
    if name not in available_sweeps():
        raise C.ConfigError(f"unknown sweep {name!r}; available sweeps: {', '.join(available_sweeps())}")
    return SWEEP_DIR / f"{name}.yaml"


def _resolve_key(key: str, leaves: set, where: str) -> str:
    """A dotted run-config key, or a unique last component of one (n_neurons -> model.n_neurons)."""
    if key in leaves:
        return key
    matches = sorted(leaf for leaf in leaves if leaf.rsplit(".", 1)[-1] == key)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise C.ConfigError(f"{where}.{key} is ambiguous: one of {', '.join(matches)}")
    raise C.ConfigError(f"{where}.{key}: not a key of this task's config")


def _resolve_grid(grid: dict, leaves: set) -> dict:
    """{key or short name: values} -> {full dotted key: non-empty list of distinct values}."""
    resolved = {}
    for key, values in grid.items():
        full = _resolve_key(key, leaves, "grid")
        if full == "train.seed":
            raise C.ConfigError("grid.train.seed: give seeds as seeds=<count or list>")
        if full in ("task", "preset"):
            raise C.ConfigError(f"grid.{full}: one sweep has one task and preset; run one sweep each")
        if full in resolved:
            raise C.ConfigError(f"grid.{key} and grid.{full} name the same key")
        values = values if isinstance(values, list) else [values]
        if not values:
            raise C.ConfigError(f"grid.{full}=[] is empty")
        if len(set(map(json.dumps, values))) != len(values):
            raise C.ConfigError(f"grid.{full}={values} has repeats")
        resolved[full] = values
    return resolved


def _seed_list(seeds: Any) -> list[int]:
    ok, rule = C.RULES["train.seed"]
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list, ListConfig)):
        raise C.ConfigError(f"seeds={seeds!r} must be a count or a list of seeds")
    if isinstance(seeds, int):
        if seeds < 1:
            raise C.ConfigError(f"seeds={seeds} must be >= 1")
        return list(range(seeds))
    seeds = list(seeds)
    if not seeds:
        raise C.ConfigError("seeds=[] is empty")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not ok(s):
            raise C.ConfigError(f"seeds: {s!r} {rule}")
    if len(set(seeds)) != len(seeds):
        raise C.ConfigError(f"seeds={seeds} has repeats")
    return seeds


def split_args(argv: Sequence[str]) -> tuple[Optional[str], list[str], list[str]]:
    """(sweep name, sweep-file overrides, run-config overrides)."""
    name, sweep_args, run_args = None, [], []
    for arg in argv:
        if "=" not in arg or arg.startswith("="):
            raise C.ConfigError(f"argument {arg!r} is not of the form key=value")
        key, value = arg.split("=", 1)
        if key == "sweep":
            name = value
        elif key.split(".", 1)[0] in SWEEP_FIELDS:
            sweep_args.append(arg)
        else:
            run_args.append(arg)
    return name, sweep_args, run_args


def load_sweep(argv: Sequence[str]) -> Sweep:
    """Parse and validate a sweep and every model's config. Raises ConfigError, writes nothing."""
    name, sweep_args, run_args = split_args(argv)
    if name is None:
        raise C.ConfigError(
            f"no sweep given (sweep=<name>); available sweeps: {', '.join(available_sweeps())}"
        )
    path = _sweep_file(name)
    raw = C._read_yaml(path)
    cli = C.parse_overrides(sweep_args) if sweep_args else OmegaConf.create({})
    # base and grid are merged as flat dotted keys so that YAML nesting and CLI dotted keys agree
    base, grid_layers = {}, []
    for layer in (raw, cli):
        for section in ("base", "grid"):
            if section in layer:
                if not isinstance(layer[section], DictConfig):
                    raise C.ConfigError(f"{section} must be a mapping of keys")
                flat = _flatten(layer[section])
                if section == "base":
                    base.update(flat)
                else:
                    grid_layers.append(flat)
                del layer[section]
    base.update(_flatten(C.parse_overrides(run_args)) if run_args else {})
    scfg = OmegaConf.structured(SweepConfig)
    scfg = C._merge(scfg, raw, str(path))
    scfg = C._merge(scfg, cli, "override")
    if OmegaConf.missing_keys(scfg):
        raise C.ConfigError(f"{path}: missing value for {sorted(OmegaConf.missing_keys(scfg))[0]}")
    for key, ok, rule in (
        ("max_models_per_group", scfg.max_models_per_group >= 0, ">= 0 (0: no cap)"),
        ("world_size", scfg.world_size >= 0, ">= 0 (0: the launcher's)"),
        ("calibration.steps", scfg.calibration.steps >= 1, ">= 1"),
        ("calibration.warmup_steps", scfg.calibration.warmup_steps >= 0, ">= 0"),
        ("calibration.repeats", scfg.calibration.repeats >= 1, ">= 1"),
        ("calibration.tolerance", scfg.calibration.tolerance >= 0, ">= 0"),
        ("wait_timeout_s", scfg.wait_timeout_s > 0, "> 0"),
    ):
        if not ok:
            raise C.ConfigError(f"{key}={OmegaConf.select(scfg, key)} must be {rule}")
    seeds = _seed_list(scfg.seeds)

    base_cfg = C.load(scfg.task, scfg.preset, _dotlist({**base, "train.seed": seeds[0]}))
    leaves = set(_flatten(OmegaConf.to_container(base_cfg)))
    resolved = {}
    for grid in grid_layers:  # the file's grid, then the command line's: a later layer replaces a key
        resolved.update(_resolve_grid(grid, leaves))

    sweep_name = path.stem
    out_dir = Path(scfg.out_dir or Path("sweeps") / sweep_name)
    points, models, groups = [], [], {}
    for combo in itertools.product(*resolved.values()):
        point = dict(zip(resolved, combo, strict=True))
        try:
            # the task / preset / base config is loaded once; each point adds its layer, validated alike
            cfg = C._merge(base_cfg, C.parse_overrides(_dotlist(point)), "grid")
            C.validate(cfg)
        except C.ConfigError as exc:
            raise C.ConfigError(f"grid point {_fmt_point(point)}: {exc}") from None
        identity = OmegaConf.to_container(cfg)
        for key in (*PRESENTATION_KEYS, "train.seed"):
            _drop(identity, key)
        ident = json.dumps(identity, sort_keys=True)
        for key in PER_MODEL_KEYS:
            _drop(identity, key)
        gkey = _short_hash(json.dumps(identity, sort_keys=True), 10)
        group = groups.setdefault(gkey, Group(gkey, cfg, []))
        for seed in seeds:
            model = Model(
                id=_short_hash(f"{ident}|seed={seed}"),
                point=len(points),
                seed=seed,
                lr=float(cfg.optim.lr),
                weight_decay=float(cfg.optim.weight_decay),
            )
            models.append(model)
            group.models.append(model)
        points.append(point)
    for group in groups.values():  # what only building finds (e.g. an init that needs an extra)
        first = group.models[0]
        try:
            build_module(group.cfg, [first.seed], [first.lr], [first.weight_decay])
        except (C.ConfigError, ValueError) as exc:
            raise C.ConfigError(f"grid point {_fmt_point(points[first.point])}: {exc}") from None
    return Sweep(sweep_name, scfg, base, resolved, seeds, points, models, list(groups.values()), out_dir)


def _drop(container: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        container = container.get(p, {})
    if isinstance(container, dict):
        container.pop(leaf, None)


def _fmt_point(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items()) or "(base)"


# ----------------------------------------------------------------------------------------------
# Launcher: which share of the batches this process takes, on which device.
@dataclass(frozen=True)
class Launch:
    launcher: str  # none | torchelastic | slurm | ...
    rank: int
    world_size: int
    local_rank: int


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
            launch = Launch(name, env.global_rank(), env.world_size(), env.local_rank())
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


# ----------------------------------------------------------------------------------------------
# Training one batch of models
def _batch_config(cfg: DictConfig, **train: Any) -> DictConfig:
    cfg = cfg.copy()
    cfg.train.progress_bar = False  # ranks print one line per batch instead
    for key, value in train.items():
        cfg.train[key] = value
    return cfg


def cpu_settings(cfg: DictConfig, device: torch.device) -> None:
    """The process-wide CPU switches a single run sets too (grok_lightning.train)."""
    if device.type != "cpu":
        return
    if cfg.train.flush_denormal:
        torch.set_flush_denormal(True)
    threads = OmegaConf.select(cfg, "train.cpu_threads", default=0)
    if threads:
        torch.set_num_threads(threads)


def fit_batch(cfg: DictConfig, models: Sequence[Model], device: torch.device, callbacks: Sequence = ()):
    """Train `models` (one group) together; returns the GrokModule and the fitted Trainer."""
    cpu_settings(cfg, device)
    datamodule, module = build_module(
        cfg, [m.seed for m in models], [m.lr for m in models], [m.weight_decay for m in models]
    )
    trainer = build_trainer(
        _batch_config(cfg), None, list(callbacks), False, checkpoints=False, **trainer_kwargs(device)
    )
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


def batch_frequencies(cfg: DictConfig, module) -> Optional[tuple]:
    """(neuron frequency [K, n], key frequencies per model) where the task has a Fourier view."""
    if "fourier" not in TASKS[cfg.task].analyses:
        return None
    return histories.learned_frequencies(module.model.W_input)


def model_rows(cfg: DictConfig, module, models: Sequence[Model], freqs: Optional[tuple] = None) -> list[dict]:
    """One row per model from the module's logged history (grok_lightning.train.run_summary)."""
    _, values = module.history_tensor()
    rows = []
    for k in range(len(models)):
        s = run_summary(cfg, module, k)
        final = s["final"]
        keys = freqs[1][k] if freqs else None
        rows.append(
            {
                **{key: s[key] for key in SUMMARY_COLUMNS if key in s},
                # a NaN/inf anywhere in its logged metrics: the other models of the batch are unaffected
                "diverged": bool(values.numel()) and not bool(torch.isfinite(values[:, k]).all()),
                "final_train_loss": final.get("train/loss"),
                "final_test_loss": final.get("val/loss"),
                "final_train_acc": final.get("train/acc"),
                "final_test_acc": final.get("val/acc"),
                "steps": None if s["final_step"] is None else s["final_step"] + 1,
                "key_frequencies": None if keys is None else " ".join(map(str, keys)),
                "n_key_frequencies": None if keys is None else len(keys),
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------
# Calibration: how many models per batch, measured
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
    cfg = _batch_config(cfg, max_steps=steps, log_every=steps)
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


def calibrate(group: Group, cap: int, device: torch.device, cal, console: Console, measure=None) -> dict:
    """ms per model-step for every candidate K in 2..cap, each the least of `cal.repeats` medians;
    stops early only when the device runs out of memory. K = choose_k of what was measured.
    Each K is timed as trained, with its padding copy (`_padded`). K = 1 is not a candidate: it
    trains two models, as K = 2 does, for one result, so it is never cheaper per model than K = 2."""
    measure = measure or measure_ms_per_model_step
    measured: dict[int, float] = {}
    for k in [k for k in candidate_sizes(cap) if k > 1]:
        sample = _padded([group.models[i % len(group.models)] for i in range(k)])  # as trained
        try:
            per_model = min(measure(group.cfg, sample, device, cal) for _ in range(cal.repeats))
            measured[k] = per_model * len(sample) / k  # per real model-step: the copy is overhead
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
    chosen = choose_k(measured, cal.tolerance) if measured else 2  # not even K = 2 fits: try it anyway
    console.print(
        f"  calibration {group.key}: ms per model-step (least of {cal.repeats} medians) "
        + ", ".join(f"K={k}: {v:.3g}" for k, v in measured.items())
        + f" -> K={chosen}"
    )
    return {"ms_per_model_step": {str(k): v for k, v in measured.items()}, "K": chosen}


# ----------------------------------------------------------------------------------------------
# Plan: the batches of this sweep, the same for every rank
def _read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def _wait_for(paths: Sequence[Path], timeout_s: float, what: str, failed=lambda: None) -> None:
    """Poll until every path exists; `failed()` returning a message (another rank died) ends it early."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        missing = [p for p in paths if not p.is_file()]
        if not missing:
            return
        message = failed()
        if message:
            raise SweepError(
                f"gave up waiting for {what}: {message}; rerun the same command to finish the rest"
            )
        if time.monotonic() > deadline:
            raise SweepError(
                f"timed out after {timeout_s:g} s waiting for {what} ({len(missing)} missing, "
                f"e.g. {missing[0]}); rerun the same command to finish: done batches are skipped"
            )
        time.sleep(delay)
        delay = min(2.0, delay * 1.5)


def batches_done(out_dir: Path) -> dict[str, dict]:
    """model id -> its row, from every finished batch file in the directory."""
    rows = {}
    for path in sorted((out_dir / "batches").glob("*.json")):
        for row in _read_json(path)["rows"]:
            rows.setdefault(row["model_id"], row)
    return rows


def plan_id(sweep: Sweep, device: torch.device, world_size: int) -> str:
    cal = sweep.scfg.calibration
    key = {
        "world_size": world_size,
        "models": [m.id for m in sweep.models],
        "groups": [g.key for g in sweep.groups],
        "cap": sweep.scfg.max_models_per_group,
        "calibrate": cal.enabled,
        "device": device_key(device) if cal.enabled else None,
    }
    return _short_hash(json.dumps(key), 12)


def make_plan(sweep: Sweep, device: torch.device, world_size: int, console: Console) -> list[dict]:
    """Rank 0: skip models already in finished batch files (earlier plans included), measure K
    per group (cached in calibration.json per device), split each group into balanced batches,
    and into at least one batch per rank where the models allow it."""
    done = batches_done(sweep.out_dir)
    cal_path = sweep.out_dir / "calibration.json"
    cache = _read_json(cal_path) if cal_path.is_file() else {}
    per_device = cache.setdefault(device_key(device), {})
    chunks: list[tuple[int, list]] = []
    for gi, group in enumerate(sweep.groups):
        todo = [m for m in group.models if m.id not in done]
        if not todo:
            continue
        cap = min(len(group.models), sweep.scfg.max_models_per_group or len(group.models))
        if sweep.scfg.calibration.enabled and cap > 1:
            entry = per_device.get(f"{group.key}/cap={cap}")
            if entry is None:
                entry = per_device[f"{group.key}/cap={cap}"] = calibrate(
                    group, cap, device, sweep.scfg.calibration, console
                )
                runs.write_json(cal_path, cache)
            k = entry["K"]
        else:
            k = cap
        n_batches = math.ceil(len(todo) / k)
        size = math.ceil(len(todo) / n_batches)  # balanced: 45 models at K=32 -> 23 + 22, not 32 + 13
        chunks.extend((gi, todo[i : i + size]) for i in range(0, len(todo), size))
    # Idle ranks cost more than smaller batches: split the largest batch until every rank has one.
    while 0 < len(chunks) < world_size:
        i = max(range(len(chunks)), key=lambda j: len(chunks[j][1]))
        gi, models = chunks[i]
        if len(models) < 2:
            break
        half = math.ceil(len(models) / 2)
        chunks[i : i + 1] = [(gi, models[:half]), (gi, models[half:])]
    batches = []
    for gi, models in chunks:
        ids = [m.id for m in models]
        batch_id = f"g{gi:03d}-{sweep.groups[gi].key}-{_short_hash(','.join(ids), 8)}"
        batches.append({"id": batch_id, "group": gi, "models": ids})
    return batches


# ----------------------------------------------------------------------------------------------
# Results
def row_prefix(sweep: Sweep, model: Model) -> dict:
    point = sweep.points[model.point]
    row = {"model_id": model.id}
    row.update(point)
    row.update(
        {
            k: v
            for k, v in (("optim.lr", model.lr), ("optim.weight_decay", model.weight_decay))
            if k not in row
        }
    )
    row["seed"] = model.seed
    return row


def results_columns(sweep: Sweep) -> list[str]:
    cols = ["model_id", *sweep.grid]
    cols += [k for k in ("optim.lr", "optim.weight_decay") if k not in cols]
    return cols + ["seed", *SUMMARY_COLUMNS, "group", "batch", "rank"]


def merge(sweep: Sweep) -> list[dict]:
    """Every model of this sweep exactly once (a model trained in two batches: the first file)."""
    done = batches_done(sweep.out_dir)
    missing = [m.id for m in sweep.models if m.id not in done]
    if missing:
        raise SweepError(
            f"{len(missing)} models have no results yet (e.g. {missing[0]}); rerun the same command"
        )
    rows = [done[m.id] for m in sweep.models]
    runs.write_csv_table(sweep.out_dir / "results.csv", rows, results_columns(sweep))
    return rows


def phase_bars(sweep: Sweep) -> list[str]:
    """The grid keys of the stacked outcome bars (phase_diagram.bars), resolved."""
    return [
        _resolve_key(str(k), set(sweep.grid), "phase_diagram.bars") for k in sweep.scfg.phase_diagram.bars
    ]


def phase_axes(sweep: Sweep) -> tuple[Optional[str], Optional[str], list[str]]:
    varying = [k for k, v in sweep.grid.items() if len(v) > 1]
    x, y = sweep.scfg.phase_diagram.x, sweep.scfg.phase_diagram.y
    for name, key in (("x", x), ("y", y)):
        if key is not None and key not in sweep.grid:
            raise C.ConfigError(
                f"phase_diagram.{name}={key} is not a grid key ({', '.join(sweep.grid) or 'none'})"
            )
    rest = [k for k in varying if k not in (x, y)]
    if x is None and rest:
        x = rest.pop(0)
    if y is None and rest:
        y = rest.pop(0)
    return x, y, rest


def outcome_table(rows: Sequence[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("outcome", "models", "share", "median memorise step", "median generalise step"):
        table.add_column(col, justify="left" if col == "outcome" else "right")
    counts = Counter(r["outcome"] for r in rows)

    def median(values):
        values = sorted(v for v in values if v not in (None, ""))
        return f"{values[len(values) // 2]:,}" if values else "-"

    for outcome in OUTCOMES:
        group = [r for r in rows if r["outcome"] == outcome]
        table.add_row(
            outcome,
            str(counts.get(outcome, 0)),
            f"{counts.get(outcome, 0) / max(1, len(rows)):.1%}",
            median(r["memorise_step"] for r in group),
            median(r["generalise_step"] for r in group),
        )
    n_div = sum(bool(r["diverged"]) for r in rows)
    if n_div:
        table.add_row("(diverged)", str(n_div), f"{n_div / len(rows):.1%}", "", "")
    return table


def log_to_wandb(sweep: Sweep, rows: Sequence[dict], fig, table_title: str) -> None:
    cfg = sweep.base_cfg
    if cfg.logger == "csv":
        return
    try:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(
            project=cfg.wandb_project,
            name=f"sweep-{sweep.name}",
            job_type="sweep",
            dir=str(sweep.out_dir),
            mode=wandb_mode(),
            config={"sweep": OmegaConf.to_container(sweep.scfg), "grid": sweep.grid, "seeds": sweep.seeds},
        )
        cols = results_columns(sweep)
        counts = Counter(r["outcome"] for r in rows)
        run.log(
            {
                "sweep/results": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows]),
                "sweep/outcomes": wandb.Table(
                    columns=["outcome", "models"], data=[[o, counts.get(o, 0)] for o in OUTCOMES]
                ),
                "sweep/phase_diagram": wandb.Image(fig, caption=table_title),
            }
        )
        run.finish()
    except Exception as exc:  # W&B must never lose the results already on disk
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"[grok_lightning] W&B unavailable ({msg}); results are in {sweep.out_dir}")


def finish(sweep: Sweep, console: Console) -> list[dict]:
    from grok_lightning.phase_diagram import phase_diagram

    rows = merge(sweep)
    x, y, facets = phase_axes(sweep)
    fig = phase_diagram(rows, x, y, facets, title=sweep.name)
    tmp = sweep.out_dir / ".phase_diagram.tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, sweep.out_dir / "phase_diagram.png")
    title = f"{sweep.name}: {len(rows)} models"
    bars = phase_bars(sweep)
    if bars:
        from grok_lightning.figures import save_png
        from grok_lightning.phase_diagram import outcome_bars

        save_png(outcome_bars(rows, bars, title=sweep.name), sweep.out_dir / "outcome_bars.png")
    console.print(outcome_table(rows, title))
    console.print(
        f"results: [bold]{sweep.out_dir / 'results.csv'}[/], figure: {sweep.out_dir / 'phase_diagram.png'}"
    )
    log_to_wandb(sweep, rows, fig, title)
    from grok_lightning.explorer import write_sweep_page

    console.print(f"explorer -> {write_sweep_page(sweep.out_dir)}")
    if any(r.get("key_frequencies") is not None for r in rows):
        from grok_lightning import seed_stats

        seed_stats.write(sweep.out_dir, rows, console)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return rows


# ----------------------------------------------------------------------------------------------
# Locks: two processes on one out_dir (a sweep started twice) never train the same batch.
def _try_lock(path: Path):
    """An open file holding an exclusive flock on `path`, or None when another process holds it.
    The kernel drops the lock when its holder exits, however it exits: a killed sweep leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.contextmanager
def _locked(path: Path, timeout_s: float, what: str, console: Optional[Console] = None):
    """Hold the lock on `path`, waiting (polling) up to timeout_s for another process to let go;
    says so in one line on `console` when it has to wait."""
    deadline, delay = time.monotonic() + timeout_s, 0.05
    while (handle := _try_lock(path)) is None:
        if console is not None and delay == 0.05:
            console.print(f"waiting for {what} (another process holds {path})")
        if time.monotonic() > deadline:
            raise SweepError(f"timed out after {timeout_s:g} s waiting for {what} (lock {path})")
        time.sleep(delay)
        delay = min(2.0, delay * 1.5)
    with handle:
        yield


# ----------------------------------------------------------------------------------------------
def run_sweep(sweep: Sweep, launch: Launch, console: Optional[Console] = None) -> Optional[list[dict]]:
    """This rank's share of the sweep; rank 0 then waits for the others and merges. Returns the
    merged rows on rank 0, None elsewhere."""
    console = console or Console(soft_wrap=True)
    started = time.time()
    tag = escape(f"[rank {launch.rank}/{launch.world_size}] ") if launch.world_size > 1 else ""
    device = device_for(sweep.base_cfg, launch)
    cpu_settings(sweep.base_cfg, device)  # before the plan: the thread count is part of its device key
    out = sweep.out_dir
    pid = plan_id(sweep, device, launch.world_size)
    plan_path = out / "plans" / f"{pid}.json"
    if launch.rank == 0:
        for sub in ("batches", "plans"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        runs.atomic_write_text(out / "sweep.yaml", _resolved(sweep))
        console.print(
            f"sweep [bold]{sweep.name}[/]: {len(sweep.models)} models in {len(sweep.groups)} groups, "
            f"{launch.world_size} process(es) ({launch.launcher}), device {device} -> {out}"
        )
        # a second launch into this directory waits for the first one's plan and shares it
        plan_lock = out / "locks" / f"plan-{pid}.lock"
        with _locked(plan_lock, sweep.scfg.wait_timeout_s, "another sweep's plan", console):
            if not plan_path.is_file():  # a plan, once written, is never rewritten: ranks all read the same
                runs.write_json(
                    plan_path,
                    {
                        "device": device_key(device),
                        "batches": make_plan(sweep, device, launch.world_size, console),
                    },
                )
    else:
        _wait_for([plan_path], sweep.scfg.wait_timeout_s, f"rank 0's plan {plan_path}")
    batches = _read_json(plan_path)["batches"]
    mine = [b for i, b in enumerate(batches) if i % launch.world_size == launch.rank]
    try:
        trained = _train_share(sweep, mine, device, launch.rank, tag, console)
    except BaseException as exc:
        # srun without --kill-on-bad-exit leaves rank 0 waiting: tell it why instead
        if launch.world_size > 1:
            reason = str(exc).splitlines()[0] if str(exc) else ""
            runs.atomic_write_text(
                out / "plans" / f"{pid}.rank{launch.rank}.failed",
                f"rank {launch.rank} failed: {type(exc).__name__}: {reason}\n",
            )
        raise
    skipped = len(mine) - trained
    if skipped:
        console.print(f"{tag}{skipped} of this rank's {len(mine)} batches were already done: skipped")
    if launch.rank != 0:
        return None

    def failed_rank() -> Optional[str]:  # a marker from this launch, not from an earlier one
        for marker in (out / "plans").glob(f"{pid}.rank*.failed"):
            if marker.stat().st_mtime >= started - 5:
                return marker.read_text().strip()
        return None

    # completion = every batch file of the plan exists: immune to stale markers of earlier launches
    _wait_for(
        [out / "batches" / f"{b['id']}.json" for b in batches],
        sweep.scfg.wait_timeout_s,
        "the other ranks' batches",
        failed_rank,
    )
    with _locked(out / "locks" / "merge.lock", sweep.scfg.wait_timeout_s, "another sweep's merge"):
        rows = finish(sweep, console)
        _print_wall_time(sweep, time.time() - started, console)
    return rows


def _print_wall_time(sweep: Sweep, this_run_s: float, console: Console) -> None:
    """Training time summed over every batch file (all invocations: resumes add up), and this one's."""
    walls = [_read_json(p)["wall_s"] for p in sorted((sweep.out_dir / "batches").glob("*.json"))]
    total = sum(walls)
    runs.write_json(
        sweep.out_dir / "wall_time.json",
        {"wall_time_s": round(total, 3), "batches": len(walls), "this_invocation_s": round(this_run_s, 3)},
    )
    console.print(
        f"wall time: {total:,.1f} s training over {len(walls)} batches (all invocations), "
        f"{this_run_s:,.1f} s this invocation"
    )


def _padded(models: Sequence[Model]) -> list:
    """The batch as trained: its models, then a copy of the last one (results dropped). Measured on
    a CPU (AVX512, torch 2.13): torch.bmm over one matrix takes torch.mm's kernel, which rounds
    otherwise than over two or more; elementwise kernels (sigmoid, exp in the binary loss) run the
    last (numel mod 32) elements of a tensor through scalar code, 1 ulp off the vector code. With
    the copy, no real model is alone or last, so each one's numbers do not depend on K."""
    return [*models, models[-1]]


def _train_share(
    sweep: Sweep, mine: list, device: torch.device, rank: int, tag: str, console: Console
) -> int:
    """Train this rank's batches that have no result file yet; returns how many it trained.
    A batch another process holds the lock of is left to it, and awaited once the rest is done:
    if that process dies (its lock frees, no result), this one trains the batch itself."""
    busy = []
    trained = sum(_train_locked(sweep, b, device, rank, tag, console, wait=False, busy=busy) for b in mine)
    if busy:
        console.print(
            f"{tag}{len(busy)} batches are being trained by another process: waiting for them "
            f"(e.g. {busy[0]['id']})"
        )
    return trained + sum(_train_locked(sweep, b, device, rank, tag, console, wait=True) for b in busy)


def _train_locked(sweep, batch, device, rank, tag, console, *, wait: bool, busy=None) -> bool:
    """Train one batch under its lock unless its result exists; True when this call trained it."""
    out = sweep.out_dir
    path = out / "batches" / f"{batch['id']}.json"
    lock_path = out / "locks" / f"{batch['id']}.lock"
    if path.is_file():
        return False
    if not wait:
        handle = _try_lock(lock_path)
        if handle is None:
            busy.append(batch)
            return False
        lock = contextlib.closing(handle)
    else:
        lock = _locked(lock_path, sweep.scfg.wait_timeout_s, f"batch {batch['id']} of another process")
    with lock:
        if path.is_file():  # the other process finished it while this one waited
            return False
        _train_batch(sweep, batch, device, rank, tag, console)
    return True


def _train_batch(sweep, batch, device, rank: int, tag: str, console: Console) -> None:
    out = sweep.out_dir
    path = out / "batches" / f"{batch['id']}.json"
    by_id = {m.id: m for m in sweep.models}
    group = sweep.groups[batch["group"]]
    models = [by_id[i] for i in batch["models"]]
    start = time.perf_counter()
    progress = _progress_callback(group.cfg, batch["id"], len(models), console if rank == 0 else None)
    module, trainer = fit_batch(group.cfg, _padded(models), device, [progress])
    wall = time.perf_counter() - start
    freqs = _first(batch_frequencies(group.cfg, module), len(models))
    rows = [
        {**row_prefix(sweep, m), **summary, "group": group.key, "batch": batch["id"], "rank": rank}
        for m, summary in zip(models, model_rows(group.cfg, module, models, freqs), strict=True)
    ]
    steps, values = module.history_tensor()
    values = values[:, : len(models)]  # without a padding copy
    histories.save_batch(
        out / "histories" / f"{batch['id']}.npz",
        [m.id for m in models],
        steps,
        values,
        METRICS,
        None if freqs is None else freqs[0],
    )
    runs.write_json(
        path, {"batch": batch["id"], "device": str(device), "wall_s": round(wall, 3), "rows": rows}
    )
    counts = Counter(r["outcome"] for r in rows)
    console.print(
        f"{tag}batch {batch['id']} ({_fmt_point(_group_point(sweep, models))}): "
        f"{len(models)} models x {trainer.global_step} steps in {wall:.1f} s "
        f"({len(models) * trainer.global_step / wall:,.0f} model-steps/s) "
        + " ".join(f"{o}={counts[o]}" for o in OUTCOMES if counts[o])
    )


def _first(freqs: Optional[tuple], n: int) -> Optional[tuple]:
    """batch_frequencies of the first n models (a padded batch has a copy after them)."""
    return None if freqs is None else (freqs[0][:n], freqs[1][:n])


# ----------------------------------------------------------------------------------------------
# Progress: one line per batch, updated at the logging cadence (not per step), rank 0 only.
class _Progress(Callback):
    def __init__(self, update, every: int):
        super().__init__()
        self.update, self.every, self.shown = update, every, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step // self.every > self.shown // self.every or step >= trainer.max_steps:
            self.shown = step
            self.update(step)

    def on_train_end(self, trainer, pl_module):
        self.update(None)

    def on_exception(self, trainer, pl_module, exception):
        self.update(None)  # a live line left running would garble the traceback


def _progress_callback(cfg: DictConfig, batch_id: str, n_models: int, console: Optional[Console]):
    """A rich progress line `batch <id>: step s / max_steps`; silent without a console (ranks > 0)
    or where the console is not a terminal (the per-batch line says the same at the end)."""
    if console is None or not console.is_terminal:
        return _Progress(lambda step: None, C.log_every(cfg))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(f"batch {escape(batch_id)} ({n_models} models)"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("steps", total=cfg.train.max_steps)

    def update(step):
        if step is None:
            bar.stop()
            return
        bar.start()
        bar.update(task, completed=step)

    return _Progress(update, C.log_every(cfg))


def _group_point(sweep: Sweep, models: Sequence[Model]) -> dict:
    """The grid values shared by all these models (their shape keys)."""
    points = [sweep.points[m.point] for m in models]
    return {k: v for k, v in points[0].items() if all(p[k] == v for p in points)}


def _resolved(sweep: Sweep) -> str:
    """The sweep as run: its settings, base overrides, grid and seeds, and the first model's config."""
    record = OmegaConf.to_container(sweep.scfg)
    record.update(
        base=sweep.base,
        grid=sweep.grid,
        seeds=sweep.seeds,
        first_model_config=OmegaConf.to_container(sweep.base_cfg),
    )
    return OmegaConf.to_yaml(OmegaConf.create(record))


def _quiet_lightning() -> None:
    # one Trainer per batch: its "GPU available" banner would repeat for every batch
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        print(USAGE.format(sweeps=", ".join(available_sweeps())))
        return 0
    try:
        sweep = load_sweep(argv)
        launch = detect_launch(sweep.scfg.world_size)
        phase_axes(sweep)  # a bad axis fails now, not after training
        phase_bars(sweep)
        device_for(sweep.base_cfg, launch)
    except C.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _quiet_lightning()
    try:
        run_sweep(sweep, launch)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The sweep file: schema, parsing and validation, models and their groups. Everything that can
be wrong with the input fails here, before any file is written."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from grok_lightning import config as C
from grok_lightning.machine import check_machine
from grok_lightning.module import build_module
from grok_lightning.run_files import RunError, complete_csv, first_line
from grok_lightning.rundir import _interpolated_key

SWEEP_DIR = C.CONFIG_DIR / "sweeps"
# The models of one sweep are listed, hashed and planned in memory before anything trains: a million
# takes over a minute and most of a gigabyte to list alone; beyond, a sweep is refused (split it).
MAX_MODELS = 1_000_000

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

# Keys added after sweeps were first run, at the value that changes nothing: left out of a model's
# identity while at it, so a sweep run before they existed keeps its model ids and resumes.
OFF_VALUES = {
    "data.op": "add",
    "optim.grokfast": "none",
    "optim.grokfast_alpha": 0.98,
    "optim.grokfast_lamb": 2.0,
    "optim.grokfast_window": 100,
    "optim.warmup_steps": 0,
    "model.kind": "mlp",
    "train.compile": "auto",
    "train.batch_size": 0,
    "train.stop_when_generalised": False,
    "data.split": "numpy",
    "data.nonzero_b": False,
}
LEGACY_KEEP_CHECKPOINTS = 3  # train.keep_checkpoints's default until it became 1 (<= 5 MB a run)
# each model.kind's own section: part of a model's identity only when that kind trains
KIND_SECTIONS = {"transformer": "model.transformer", "decoder": "model.decoder"}


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
    workers: int = 0  # processes started on this machine when no launcher is: 0 = one per usable core
    # (divided by train.cpu_threads; $GROK_SWEEP_WORKERS overrides this default), 1 = this process only
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


def short_hash(text: str, n: int = 12) -> str:
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


def resolve_key(key: str, leaves: set, where: str) -> str:
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
        full = resolve_key(key, leaves, "grid")
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
        if not 1 <= seeds <= MAX_MODELS:
            raise C.ConfigError(f"seeds={seeds} must be in [1, {MAX_MODELS:,}]")
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
            if not value.strip():  # YAML reads it as null: an unset shell variable would pick the default
                raise C.ConfigError(f"{key}= is empty (null gives its default)")
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
    try:  # the file's own interpolations (out_dir: ${oc.env:SCRATCH}/...) resolve now or never
        OmegaConf.resolve(raw)
    except OmegaConfBaseException as exc:
        raise C.ConfigError(f"{path}: {C._one_line(exc)}") from None
    cli = C.parse_overrides(sweep_args) if sweep_args else OmegaConf.create({})
    run_layer = C.parse_overrides(run_args) if run_args else OmegaConf.create({})
    for layer in (cli, run_layer):  # as train refuses them: resolved later, they fail mid-sweep
        if key := _interpolated_key(OmegaConf.to_container(layer, resolve=False)):
            raise C.ConfigError(f"{key}: interpolations (${{...}}) are not allowed in overrides")
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
    base.update(_flatten(run_layer))
    # each model's seed comes from seeds=: one given here would be ignored (train.seed={a: 1} too)
    if any(key == "train.seed" or key.startswith("train.seed.") for key in base):
        raise C.ConfigError("train.seed: give seeds as seeds=<count or list>")
    scfg = OmegaConf.structured(SweepConfig)
    scfg = C._merge(scfg, raw, str(path))
    scfg = C._merge(scfg, cli, "override")
    if OmegaConf.missing_keys(scfg):
        raise C.ConfigError(f"{path}: missing value for {sorted(OmegaConf.missing_keys(scfg))[0]}")
    for key, ok, rule in (
        ("max_models_per_group", scfg.max_models_per_group >= 0, ">= 0 (0: no cap)"),
        ("world_size", scfg.world_size >= 0, ">= 0 (0: the launcher's)"),
        ("workers", scfg.workers >= 0, ">= 0 (0: one per core)"),
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
    n_models = math.prod(map(len, resolved.values())) * len(seeds)
    if n_models > MAX_MODELS:
        raise C.ConfigError(
            f"grid x seeds = {n_models:,} models, more than {MAX_MODELS:,} in one sweep: split it"
        )

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
            raise C.ConfigError(f"grid point {fmt_point(point)}: {exc}") from None
        identity = OmegaConf.to_container(cfg)
        # how many step files a run keeps changes no number; ids were first made at its old default
        identity["train"]["keep_checkpoints"] = LEGACY_KEEP_CHECKPOINTS
        for key in (*PRESENTATION_KEYS, "train.seed"):
            drop(identity, key)
        for key, off in OFF_VALUES.items():
            if OmegaConf.select(cfg, key) == off:
                drop(identity, key)
        for kind, section in KIND_SECTIONS.items():
            if OmegaConf.select(cfg, "model.kind") != kind:
                drop(identity, section)
        ident = json.dumps(identity, sort_keys=True)
        for key in PER_MODEL_KEYS:
            drop(identity, key)
        gkey = short_hash(json.dumps(identity, sort_keys=True), 10)
        group = groups.setdefault(gkey, Group(gkey, cfg, []))
        for seed in seeds:
            model = Model(
                id=short_hash(f"{ident}|seed={seed}"),
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
            check_machine(group.cfg)  # a size this machine cannot hold fails here, not in the allocator
            build_module(group.cfg, [first.seed], [first.lr], [first.weight_decay])
        except (C.ConfigError, ValueError, MemoryError) as exc:
            raise C.ConfigError(f"grid point {fmt_point(points[first.point])}: {exc}") from None
    sweep = Sweep(sweep_name, scfg, base, resolved, seeds, points, models, list(groups.values()), out_dir)
    check_out_dir(sweep)  # another sweep's results there are never replaced
    return sweep


def key_columns(sweep: Sweep) -> list[str]:
    """The columns of results.csv that say which model a row is."""
    cols = ["model_id", *sweep.grid]
    cols += [k for k in ("optim.lr", "optim.weight_decay") if k not in cols]
    return cols + ["seed"]


def check_out_dir(sweep: Sweep) -> None:
    """The out_dir must be a directory (or not exist yet), and what an earlier sweep left there must
    be this sweep's: a results.csv of the same models under the same grid keys (merge would replace
    another sweep's table), batch files and plans of its models only (an interrupted other sweep),
    each readable. The same sweep again reruns what is missing. Raises ConfigError before anything
    is written."""
    out, path = sweep.out_dir, sweep.out_dir / "results.csv"
    try:
        if out.exists() and not out.is_dir():
            raise C.ConfigError(f"out_dir={out}: not a directory")
        header, rows = complete_csv(path)
        earlier = _models_saved(out)
    except RunError as exc:
        raise C.ConfigError(f"out_dir={out}: {exc}; give another out_dir=") from None
    except OSError as exc:  # e.g. a name too long
        raise C.ConfigError(f"out_dir={out}: {exc.strerror or first_line(exc)}") from None
    keys, ids = key_columns(sweep), [m.id for m in sweep.models]
    if path.is_file() and (header[: len(keys)] != keys or [r.get("model_id") for r in rows] != ids):
        raise C.ConfigError(
            f"out_dir={out} holds another sweep's results ({len(rows)} models in results.csv, this "
            f"sweep has {len(sweep.models)}, other models or grid keys); give another out_dir=, or "
            f"remove {out} to start afresh"
        )
    if others := sorted(earlier - set(ids)):
        raise C.ConfigError(
            f"out_dir={out} holds another sweep's batches or plans ({len(others)} models this sweep "
            f"does not have, e.g. {others[0]}); give another out_dir=, or remove {out} to start afresh"
        )


def _models_saved(out: Path) -> set:
    """The model ids in out_dir's batch files and plans. They are written atomically, so one that
    does not parse was damaged from outside: ConfigError naming it, the user decides (removed, its
    batch trains or its plan is made again), rather than a failure mid-sweep."""
    ids = set()
    for folder, models, redo in (
        ("batches", lambda saved: [row["model_id"] for row in saved["rows"]], "train its batch"),
        ("plans", lambda saved: [m for batch in saved["batches"] for m in batch["models"]], "plan"),
    ):
        for path in sorted((out / folder).glob("*.json")):
            try:
                ids.update(models(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise C.ConfigError(
                    f"out_dir={out}: {path.relative_to(out)} is unreadable ({first_line(exc)}); "
                    f"remove it to {redo} again"
                ) from None
    return ids


def make_out_dir(path: Path, key: str = "out_dir") -> None:
    """Create an output directory and its parents, a command's first write: ConfigError naming
    `key` when it cannot be, or cannot be written in (a file in the way, a read-only place)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # os.access would pass root where nobody can write
            pass
    except FileExistsError:
        raise C.ConfigError(f"{key}={path}: not a directory") from None
    except OSError as exc:
        raise C.ConfigError(f"{key}={path}: cannot write there ({exc.strerror or first_line(exc)})") from None


def phase_bars(sweep: Sweep) -> list[str]:
    """The grid keys of the stacked outcome bars (phase_diagram.bars), resolved."""
    return [resolve_key(str(k), set(sweep.grid), "phase_diagram.bars") for k in sweep.scfg.phase_diagram.bars]


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


def drop(container: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        container = container.get(p, {})
    if isinstance(container, dict):
        container.pop(leaf, None)


def fmt_point(point: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items()) or "(base)"

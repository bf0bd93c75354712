"""Typed run configuration: task YAML + preset YAML + key=value overrides, checked once.

`load(task, preset, overrides)` returns a validated OmegaConf config backed by the task's dataclass
schema (grok_lightning.tasks: each task's `config_class`, built on the shared sections of
grok_lightning.schema). Every problem (unknown task/preset/key, wrong type, impossible value) raises
`ConfigError` with one line naming the key; the CLI turns it into exit code 2 before anything is written.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from grok_lightning.schema import CHOICES, RULES, CallbacksConfig, CallbackToggle, ConfigError
from grok_lightning.tasks import TASKS

CONFIG_DIR = Path(  # an installed wheel carries configs/ in the package, a checkout at the repository root
    os.environ.get(
        "GROK_CONFIG_DIR",
        next(filter(Path.is_dir, (Path(__file__).resolve().parents[i] / "configs" for i in (0, 1))), None)
        or Path(__file__).resolve().parents[1] / "configs",
    )
)


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
    except TypeError as exc:  # e.g. a mapping given where the schema has a list
        keys = ", ".join(_leaf_keys(layer)) if isinstance(layer, DictConfig) else "?"
        raise ConfigError(f"{source} ({keys}): {str(exc).splitlines()[0]}") from None


def _leaf_keys(layer: DictConfig, prefix: str = "") -> list[str]:
    """The dotted keys of an override layer, to section.key depth (where a type clash shows)."""
    out = []
    for key, value in layer.items():
        name = f"{prefix}{key}"
        nested = isinstance(value, DictConfig) and not prefix
        out += _leaf_keys(value, f"{name}.") if nested else [name]
    return out


def parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        if any(c.isdigit() and not c.isascii() for c in value):  # int("１００") would take them
            raise ConfigError(f"{key}={value}: write numbers with the digits 0-9")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except Exception as exc:
        raise ConfigError(f"cannot parse overrides {overrides}: {str(exc).splitlines()[0]}") from None


def load(task: str, preset: Optional[str] = None, overrides: Optional[list[str]] = None) -> DictConfig:
    """Build the validated config of one run: schema <- configs/<task>.yaml <- preset <- overrides."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; available tasks: {', '.join(sorted(TASKS))}")
    task_yaml = _read_yaml(CONFIG_DIR / f"{task}.yaml")
    if preset is not None and not str(preset).strip():
        raise ConfigError(f"preset= is empty; available presets: {', '.join(available_presets(task))}")
    preset = preset or task_yaml.pop("default_preset", None)
    task_yaml.pop("default_preset", None)
    presets = available_presets(task)
    if preset not in presets:
        raise ConfigError(
            f"unknown preset {preset!r} for task {task!r}; available presets: {', '.join(presets)}"
        )

    cfg = OmegaConf.structured(TASKS[task].config_class)
    cfg = _merge(cfg, task_yaml, f"configs/{task}.yaml")
    cfg = _merge(cfg, _read_yaml(CONFIG_DIR / "presets" / task / f"{preset}.yaml"), f"preset {preset}")
    layer = parse_overrides(list(overrides or []))
    for key in ("task", "preset"):
        if key in layer:
            raise ConfigError(f"{key} cannot be overridden here; pass it as {key}=... to the command")
    _check_booleans(cfg, layer)
    cfg = _merge(cfg, layer, "override")
    cfg.task, cfg.preset = task, preset
    validate(cfg)
    return cfg


def over_schema(
    task: str, saved: DictConfig, source: str, overrides: Optional[list[str]] = None
) -> DictConfig:
    """A saved config (a run's config.yaml) merged over its task's schema, then key=value overrides,
    validated: what a resume continues and what load_run reads back. Raises ConfigError."""
    cfg = _merge(OmegaConf.structured(TASKS[task].config_class), saved, source)
    layer = parse_overrides(list(overrides or []))
    _check_booleans(cfg, layer)
    cfg = _merge(cfg, layer, "override")
    cfg.task, cfg.preset = task, saved.get("preset")
    validate(cfg)
    return cfg


def _check_booleans(cfg: DictConfig, layer: DictConfig, prefix: str = "") -> None:
    """A boolean key takes true or false: OmegaConf would read 2 (or "yes") as True."""
    for key, value in layer.items():
        name = f"{prefix}{key}"
        try:
            current = OmegaConf.select(cfg, name, default=None)
        except OmegaConfBaseException:  # e.g. a mapping given for a list: the merge names it
            continue
        if isinstance(value, DictConfig):
            _check_booleans(cfg, value, f"{name}.")
        elif isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigError(f"{name}={value}: expected true or false")


MAX_INT = 2**53


def _leaves(node, prefix: str = ""):
    """(dotted key, value) of every leaf of a plain nested container."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
    if items is None:
        yield prefix, node
        return
    for key, value in items:
        yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))


def validate(cfg: DictConfig) -> None:
    """Value checks the type schema cannot express: the shared ones, then the task's (its choices,
    rules and validate hook). Raises ConfigError naming the first bad key."""
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        raise ConfigError(f"missing value for {sorted(missing)[0]}")
    task = TASKS.get(cfg.task)
    if task is None:
        raise ConfigError(f"unknown task {cfg.task!r}; available tasks: {', '.join(sorted(TASKS))}")
    for key, value in _leaves(OmegaConf.to_container(cfg)):
        if type(value) is int and abs(value) > MAX_INT:  # past int64 (torch) and exact floats (sizes)
            raise ConfigError(f"{key}={value} is too large: whole numbers in a config are at most 2**53")
    for key, choices in {**CHOICES, **task.choices}.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and str(value) not in choices:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")
    for key, (ok, rule) in {**RULES, **task.rules}.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value} must be a finite number")
        if not ok(value):
            raise ConfigError(f"{key}={value} {rule}")
    cap = cfg.train.step_cap
    if cap and cap < cfg.train.max_steps:
        raise ConfigError(
            f"train.step_cap={cap} must be 0 (a fixed budget) or >= train.max_steps={cfg.train.max_steps}"
        )
    every = cfg.train.checkpoint_every
    if every and every % cfg.train.steps_per_call:
        raise ConfigError(
            f"train.checkpoint_every={every} must be a multiple of "
            f"train.steps_per_call={cfg.train.steps_per_call}"
        )
    if task.validate is not None:
        task.validate(cfg)


def callback_switches(enabled: bool) -> list[str]:
    """Overrides that switch every analysis callback on or off."""
    toggles = [name for name, value in vars(CallbacksConfig()).items() if isinstance(value, CallbackToggle)]
    return [f"callbacks.{name}.enabled={str(enabled).lower()}" for name in toggles]


def budget(cfg: DictConfig):
    """The run's step budget (grok_lightning.fate.Budget): nominal max_steps, cap, margin, window."""
    from grok_lightning.fate import Budget

    nominal = cfg.train.max_steps
    get = lambda key: OmegaConf.select(cfg, key, default=0) or 0  # noqa: E731 (configs older than the budget)
    return Budget(
        nominal=nominal,
        cap=max(get("train.step_cap"), nominal),
        margin=get("train.stop_margin") or max(nominal // 10, 1),
        window=get("outcome.fate_window") or max(nominal // 5, 1),
        early=bool(get("train.stop_when_generalised")),
    )


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

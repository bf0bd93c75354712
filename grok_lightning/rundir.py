"""Opening a run directory for training: a new one, or a resume checked first (config, lock,
checkpoint), so that a refused resume changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf

from grok_lightning import config as C
from grok_lightning import runs

# Keys a resume may not change: they change the tensors' shapes, the data or the task itself.
FIXED_ON_RESUME = ("data.", "model.", "train.seed", "train.precision")


def resume_config(special: dict, overrides: list[str]) -> tuple[DictConfig, Path]:
    """(the run's config with the overrides, its directory) for resume=<run dir>."""
    from grok_lightning.tasks import TASKS

    run_dir = Path(special["resume"])
    if not runs.is_run_dir(run_dir):
        raise C.ConfigError(f"resume={run_dir}: not a run directory (no config.yaml there)")
    if runs.last_checkpoint(run_dir) is None:
        raise C.ConfigError(f"resume={run_dir}: no checkpoints/last.ckpt to resume from")
    try:
        saved = OmegaConf.load(run_dir / "config.yaml")
    except Exception as exc:  # yaml errors come in many classes
        raise C.ConfigError(f"{run_dir}/config.yaml: unreadable ({str(exc).splitlines()[0]})") from None
    if not isinstance(saved, DictConfig):
        raise C.ConfigError(f"{run_dir}/config.yaml: not a mapping of keys")
    task, preset = saved.get("task"), saved.get("preset")
    if task not in TASKS:
        raise C.ConfigError(f"resume={run_dir}: config.yaml names unknown task {task!r}")
    for key, value in (("task", task), ("preset", preset)):
        if key in special and special[key] != value:
            raise C.ConfigError(f"{key}={special[key]}: the run to resume has {key} {value}")
    cfg = OmegaConf.structured(TASKS[task].config_class)
    cfg = C._merge(cfg, saved, f"{run_dir}/config.yaml")
    layer = C.parse_overrides(overrides)
    cfg = C._merge(cfg, layer, "override")
    cfg.task, cfg.preset = task, preset
    C.validate(cfg)
    for key in _dotted_keys(layer):
        if key.startswith(FIXED_ON_RESUME) and OmegaConf.select(cfg, key) != OmegaConf.select(saved, key):
            raise C.ConfigError(
                f"{key}={OmegaConf.select(cfg, key)} differs from the run's "
                f"{OmegaConf.select(saved, key)}: it changes the model or the task; start a new run"
            )
    return cfg, run_dir


def _dotted_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        keys += _dotted_keys(value, f"{dotted}.") if isinstance(value, DictConfig) else [dotted]
    return keys


def open_run_dir(cfg: DictConfig, resume_dir: Optional[Path], module):
    """(run directory, its lock, the step resumed from or None) with config.yaml written. A resume
    is checked first (lock free, checkpoint readable and fitting the config's model), so a refused
    one changes nothing."""
    if resume_dir is not None:
        try:
            lock = runs.lock_run(resume_dir)
        except OSError as exc:
            raise C.ConfigError(f"resume={resume_dir}: {exc}") from None
        try:
            step = check_checkpoint(runs.last_checkpoint(resume_dir), module)
            runs.atomic_write_text(resume_dir / "config.yaml", C.to_yaml(cfg))
        except BaseException:
            lock.close()
            raise
        return resume_dir, lock, step
    try:
        run_dir = runs.new_run_dir(cfg.run_root, cfg.task)
    except OSError as exc:
        raise C.ConfigError(f"run_root={cfg.run_root}: cannot create a run directory ({exc})") from None
    try:
        lock = runs.lock_run(run_dir)
        runs.atomic_write_text(run_dir / "config.yaml", C.to_yaml(cfg))
    except OSError as exc:  # e.g. a full disk: leave no half-made run directory behind
        shutil.rmtree(run_dir, ignore_errors=True)
        raise C.ConfigError(f"run_root={cfg.run_root}: cannot write the run directory ({exc})") from None
    return run_dir, lock, None


def check_checkpoint(path: Path, module) -> int:
    """The checkpoint a resume continues from must load, and fit the model the config builds.
    Returns its global step."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        state = ckpt["state_dict"]
        step = int(ckpt["global_step"])
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise C.ConfigError(f"{path}: cannot read checkpoint ({msg})") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise C.ConfigError(
            f"{path} does not fit the model of this config: {str(exc).splitlines()[0]}"
        ) from None
    return step

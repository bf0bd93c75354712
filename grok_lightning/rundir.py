"""Opening a run directory for training: a new one, or a resume checked first (config, lock,
checkpoint, budget, metrics.csv), so that a refused resume changes nothing and a finished run with
nothing to train is left as it is (RunFinished). A resume that trains on starts from the state an
uninterrupted run had at its step (Resume, AsUninterrupted): what the run made at its last step
only because it ended there is dropped."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from grok_lightning import config as C
from grok_lightning import run_files, runs
from grok_lightning.module import METRICS

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
    if key := _interpolated_key(OmegaConf.to_container(saved, resolve=False)):
        raise C.ConfigError(f"{run_dir}/config.yaml: {key}: interpolations (${{...}}) are not allowed")
    task, preset = saved.get("task"), saved.get("preset")
    if task not in TASKS:
        raise C.ConfigError(f"resume={run_dir}: config.yaml names unknown task {task!r}")
    for key, value in (("task", task), ("preset", preset)):
        if key in special and special[key] != value:
            raise C.ConfigError(f"{key}={special[key]}: the run to resume has {key} {value}")
    cfg = C.over_schema(task, saved, f"{run_dir}/config.yaml", overrides)
    for key in _dotted_keys(C.parse_overrides(overrides)):
        if key.startswith(FIXED_ON_RESUME) and OmegaConf.select(cfg, key) != OmegaConf.select(saved, key):
            raise C.ConfigError(
                f"{key}={OmegaConf.select(cfg, key)} differs from the run's "
                f"{OmegaConf.select(saved, key)}: it changes the model or the task; start a new run"
            )
    return cfg, run_dir


def _interpolated_key(value, key: str = "") -> Optional[str]:
    """The first dotted key whose value (or an item of it) is an interpolation: train writes none,
    and one resolved later would fail after the run directory changed."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return key if isinstance(value, str) and "${" in value else None
    for name, item in items:
        if found := _interpolated_key(item, f"{key}.{name}" if key else str(name)):
            return found
    return None


def _dotted_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        keys += _dotted_keys(value, f"{dotted}.") if isinstance(value, DictConfig) else [dotted]
    return keys


def open_run_dir(cfg: DictConfig, resume_dir: Optional[Path], module):
    """(run directory, its lock, the Resume or None) with config.yaml written. A resume is checked
    first (lock free, files intact, checkpoint readable, finite and fitting the config's model), so a
    refused one changes nothing; a finished run that the config would not train on raises
    RunFinished, its files untouched."""
    if resume_dir is not None:
        try:
            lock = runs.lock_run(resume_dir)
        except OSError as exc:
            raise C.ConfigError(f"resume={resume_dir}: {exc}") from None
        try:
            resume = check_resume(resume_dir, cfg, module)
            runs.atomic_write_text(resume_dir / "config.yaml", C.to_yaml(cfg))
        except BaseException:
            lock.close()
            raise
        return resume_dir, lock, resume
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


class RunFinished(Exception):
    """A finished run whose resume would train nothing: a no-op, every file as it was."""

    def __init__(self, run_dir: Path, summary: dict):
        super().__init__(f"{run_dir} finished at step {summary['steps_trained']}")
        self.run_dir, self.summary = run_dir, summary


@dataclass(frozen=True)
class Resume:
    """A resume from a checkpoint at step `step` (S). `last_logged`: whether the resumed config logs
    step S - 1, the last one trained (a finished run logged it as its end; one that trains on keeps
    it only where an uninterrupted run would have it)."""

    step: int
    last_logged: bool

    def keeps_last_row(self, row: dict) -> bool:
        """Whether a metrics.csv row at step S - 1 stays: the module's, where logged; the analyses'
        are made again by AsUninterrupted."""
        return self.last_logged and bool(row.get(METRICS[0]))


def check_resume(run_dir: Path, cfg: DictConfig, module) -> Resume:
    """Every check of a resume that reads the run's files, in the order a user can act on: the
    checkpoint (readable, fits the model, finite), the budget (not below its step), metrics.csv
    (every row the checkpoint logged is there), then whether it is a finished run with nothing to
    train (RunFinished). Loads the checkpoint into `module`."""
    path = runs.last_checkpoint(run_dir)
    ckpt = read_fitting_checkpoint(path, module)
    step = int(ckpt["global_step"])
    check_budget(cfg, step, run_files.read_config(run_dir).train.max_steps)
    check_metrics(run_dir, ckpt, step)
    module.on_load_checkpoint(ckpt)
    keep_logged_rows(module, step)
    module.replay_decisions()  # a pure function of the history: the budget's stops as the run goes on
    summary = run_files.read_summary(run_dir) or {}
    finished = summary.get("status") == "finished" and summary.get("steps_trained") == step
    if finished and (module.all_stopped or step >= module.max_steps):
        raise RunFinished(run_dir, summary)
    return Resume(step, module.is_logged(step - 1))


def read_fitting_checkpoint(path: Path, module) -> dict:
    """The checkpoint a resume continues from: it must load, fit the model the config builds (its
    weights are loaded into `module`) and hold only finite weights and optimiser state."""
    try:
        ckpt = run_files.read_checkpoint(path, require=("global_step",))
        int(ckpt["global_step"])
    except run_files.RunError as exc:  # a resume's errors are the config's: train answers them
        raise C.ConfigError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise C.ConfigError(f"{path}: cannot read checkpoint ({run_files.first_line(exc)})") from None
    state = ckpt["state_dict"]
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise C.ConfigError(
            f"{path} does not fit the model of this config: {str(exc).splitlines()[0]}"
        ) from None
    if not all(bool(t.isfinite().all()) for t in _float_tensors([state, ckpt.get("optimizer_states", [])])):
        raise C.ConfigError(
            f"{path}: its weights or optimiser state are not finite (NaN or Inf); no run goes on from it"
        )
    return ckpt


def _float_tensors(value):
    """Every floating-point tensor in nested mappings and sequences."""
    if torch.is_tensor(value):
        if value.is_floating_point():
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _float_tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _float_tensors(item)


def check_budget(cfg: DictConfig, step: int, saved_max_steps: int) -> None:
    """A resume trains on from `step`: its cap may not be below it, nor a nominal budget lowered
    below it (one that an adaptive run passed in its extension may stay as it was)."""
    cap_key = "train.step_cap" if cfg.train.step_cap else "train.max_steps"
    for key, value, least in (
        ("train.max_steps", cfg.train.max_steps, min(step, saved_max_steps)),
        (cap_key, C.budget(cfg).cap, step),
    ):
        if value < least:
            raise C.ConfigError(
                f"{key}={OmegaConf.select(cfg, key)} is below the run's step {step}: a resume cannot "
                f"undo steps; give {key} >= {least}, or start a new run"
            )


def check_metrics(run_dir: Path, ckpt: dict, step: int) -> None:
    """metrics.csv must be a metrics table holding a row for every step the checkpoint logged: a
    resume keeps the rows before its step and never measures them again."""
    path = run_dir / "metrics.csv"
    try:
        header, rows = run_files.complete_csv(path)
        steps, _ = run_files.numbers(rows, [n for n in header if n != "step"], path)
    except run_files.RunError as exc:
        raise C.ConfigError(str(exc)) from None
    logged = [int(s) for s in (ckpt.get("grok_history") or {}).get("steps", [])]
    missing = sorted(set(logged) - set(steps.tolist()))
    if missing:
        raise C.ConfigError(
            f"{path}: {len(missing)} of the {len(logged)} rows logged before step {step} are missing "
            f"(the first at step {missing[0]}); a resume cannot measure them again: restore the file "
            "or start a new run"
        )


def keep_logged_rows(module, step: int) -> None:
    """The restored history without its last row (step S - 1) where the resumed config does not log
    that step: a finished run logged its last step, an uninterrupted longer run would not have. New
    lists, so the module's caches of the history follow."""
    keep = [i for i, s in enumerate(module.history_steps) if s < step - 1 or module.is_logged(s)]
    module.history_steps = [module.history_steps[i] for i in keep]
    module.history = [module.history[i] for i in keep]


class AsUninterrupted(L.Callback):
    """Makes a resumed run's state the one an uninterrupted run had after the call that ended at
    the checkpoint's step S: the module's history as keep_logged_rows leaves it, and every analysis
    callback's series without step S - 1, whose call is then made again (their measures at S - 1 can
    depend on the history, which a finished run's last row changed; the trajectory drops its frame
    at S - 1 itself). Put it after the analysis callbacks: their on_train_start runs first."""

    def __init__(self, resume: Resume, analyses: list, steps_per_call: int):
        from grok_lightning.callbacks._base import AnalysisCallback  # matplotlib: only when training

        self.resume, self.steps_per_call = resume, steps_per_call
        self.analyses = [cb for cb in analyses if isinstance(cb, AnalysisCallback)]

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # the module's own hook has run; the callbacks' load_state_dict follows this hook
        keep_logged_rows(pl_module, self.resume.step)
        last = self.resume.step - 1
        for cb in self.analyses:
            state = checkpoint.get("callbacks", {}).get(cb.state_key)
            if isinstance(state, dict) and "steps" in state:
                keep = [i for i, s in enumerate(state["steps"]) if s < last]
                state["steps"] = [state["steps"][i] for i in keep]
                if "series" in state:
                    state["series"] = {k: [v[i] for i in keep] for k, v in state["series"].items()}

    def on_train_start(self, trainer, pl_module) -> None:
        if self.resume.step == 0:  # no call ended there
            return
        if pl_module.history:  # the progress bar's and the loss gap's latest logged metrics
            pl_module.latest = dict(zip(METRICS, pl_module.history[-1][0].tolist()))
        pl_module.replay_decisions()  # as they stood after that call (the module replays them again)
        step = self.resume.step
        for cb in self.analyses:
            # the base class's record of the step count where that call began
            cb._before = (step - 1) // self.steps_per_call * self.steps_per_call
            cb.on_train_batch_end(trainer, pl_module, None, None, 0)

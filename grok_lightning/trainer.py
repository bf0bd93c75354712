"""Builds the Lightning Trainer of a run: progress bar, a one-line model summary, checkpoints
(RunCheckpoint), and Lightning's console notices that do not apply here kept quiet. Its loggers
are built in grok_lightning.loggers."""

from __future__ import annotations

import io
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig

from grok_lightning import config as C
from grok_lightning import run_files, runs
from grok_lightning.module import Diverged

# We log at our own cadence through logger.log_metrics, so Lightning's per-epoch logging interval
# check does not apply; the pytree notice comes from Lightning itself. A resume is mid-epoch by
# design (one long epoch): the data is one full batch on the device and the checkpoint holds the
# step, so the dataloader (Ticks, a call counter) has no position to restore.
warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")
warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")
# On a machine with SLURM's tools installed, outside a job: a run here needs no srun.
warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")

# Lightning's info lines that say nothing a user of this project can act on: its cloud logger's
# advertisement, the hardware banner (the size line and train.accelerator say where it runs), the
# Tensor Cores advice (lower matmul precision would change the numerics; train.precision chooses),
# the second of its two restore lines (the first names the checkpoint), and its stop at max_steps
# (the run's own end line says how it ended).
QUIET_NOTICES = (
    "litlogger",
    "`Trainer.fit` stopped: `max_steps=",
    "GPU available:",
    "TPU available:",
    "LOCAL_RANK:",
    "that has Tensor Cores",
    "Restored all states from the checkpoint",
)


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(notice in message for notice in QUIET_NOTICES)


# where those lines are logged: rank_zero_info of either package, and the CUDA accelerator's setup
for _name in (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
):
    logging.getLogger(_name).addFilter(_DropNotices())


class ModelSize(L.Callback):
    """One line instead of Lightning's summary table, whose FLOPs row reads 0 for these models."""

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and trainer.global_step == 0:
            params = list(pl_module.parameters())
            trained = sum(p.numel() for p in params if p.requires_grad)
            fixed = sum(p.numel() for p in params if not p.requires_grad)
            size = sum(p.numel() * p.element_size() for p in params) / 2**20
            n_models = getattr(pl_module, "n_models", None) or 1
            print(
                f"model: {trained:,} trained parameters"
                + (f" and {fixed:,} fixed" if fixed else "")
                + f" ({size:.3g} MB)"
                + (f" over {n_models} models" if n_models > 1 else "")
            )


def progress_items(trainer, pl_module) -> dict:
    """The step, model 0's last logged accuracies and losses, and its fate (grok_lightning.fate)."""
    items = {"step": trainer.global_step}
    latest = getattr(pl_module, "latest", {})
    for name in ("train/acc", "test/acc", "train/loss", "test/loss"):
        if name in latest:
            items[name] = f"{latest[name]:.4f}" if "acc" in name else f"{latest[name]:.3g}"
    fate = getattr(pl_module, "latest_fate", None)
    if fate is not None:  # generalised / not yet / stuck / did not fit
        items["fate"] = fate.fate
    warning = getattr(pl_module, "latest_forecast", None)
    if warning:  # grok_lightning.early_warning, where a reference of this setting exists
        items["forecast"] = warning.removeprefix("forecast: ")
    return items


# Seconds between two plain progress lines (PlainProgress): 30 unless this variable says otherwise.
PROGRESS_EVERY_ENV = "GROK_PROGRESS_EVERY_S"


def plain_every_s() -> float:
    raw = os.environ.get(PROGRESS_EVERY_ENV, "")
    try:
        every = float(raw) if raw else 30.0
    except ValueError:
        every = float("nan")
    if not every > 0:
        raise C.ConfigError(f"${PROGRESS_EVERY_ENV}={raw!r} must be a number of seconds > 0")
    return every


class PlainProgress(L.Callback):
    """Where stdout is no terminal (nohup, a scheduler's log): a plain line at most every `every_s`
    seconds ($GROK_PROGRESS_EVERY_S, default 30) and one at the end, instead of a live bar, written
    to `out` (default stdout) and flushed. The clock is read at every optimiser step, not only at the
    end of a training_step call: a call runs steps_per_call steps, which can outlast a minute.
    A line: `<head>step s / nominal (cap c)  <progress_items>  ETA <t>`, t at the speed so far to
    the nominal budget, past it to the cap ("at most"); subclasses add items (`items`)."""

    def __init__(self, every_s: Optional[float] = None, clock=time.monotonic, head: str = "", out=None):
        self.every_s = plain_every_s() if every_s is None else every_s
        self.clock, self.head, self.out = clock, head, out
        self.last = self.started = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = (self.clock(), trainer.global_step)  # a resume's speed counts from its own start

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.tick(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.tick(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.started = None  # the end line has no ETA
        self.emit(trainer, pl_module, self.clock())

    def tick(self, trainer, pl_module) -> None:
        now = self.clock()
        if self.last is None or now - self.last >= self.every_s:
            self.last = now
            self.emit(trainer, pl_module, now)

    @staticmethod
    def target(trainer, pl_module) -> tuple[int, bool]:
        """(the step the ETA counts to, whether that is only a bound): the nominal budget, past it
        the cap, where an adaptive budget may stop the run sooner."""
        budget = getattr(pl_module, "budget", None)
        if budget is not None and trainer.global_step < budget.nominal:
            return budget.nominal, False
        return trainer.max_steps, budget is not None and budget.adaptive

    def left_s(self, trainer, pl_module, now: float) -> Optional[float]:
        """Seconds to the target step at the speed since the start (None before a step is done)."""
        if self.started is None or trainer.global_step <= self.started[1]:
            return None
        (t0, step0), step = self.started, trainer.global_step
        return max(self.target(trainer, pl_module)[0] - step, 0) * (now - t0) / (step - step0)

    def items(self, trainer, pl_module, now: float) -> dict:
        items = progress_items(trainer, pl_module)
        left = self.left_s(trainer, pl_module, now)
        if left is not None:
            from grok_lightning.sweep.eta import fmt_duration  # here: the sweep package imports this module

            items["ETA"] = fmt_duration(left) + (" at most" if self.target(trainer, pl_module)[1] else "")
        return items

    def emit(self, trainer, pl_module, now: float) -> None:
        if not trainer.is_global_zero:
            return
        items = self.items(trainer, pl_module, now)
        budget, limit = getattr(pl_module, "budget", None), ""
        if budget is not None:
            limit = f" / {budget.nominal:,}" + (f" (cap {budget.cap:,})" if budget.adaptive else "")
        step = items.pop("step")
        parts = [f"{self.head}step {step:,}{limit}", *(f"{k} {v}" for k, v in items.items())]
        print("  ".join(parts), file=self.out or sys.stdout, flush=True)


class GrokProgressBar(RichProgressBar):
    """Shows the optimiser step and the last logged accuracies and losses of model 0."""

    def _get_train_description(self, current_epoch: int) -> str:
        return "training"  # one long epoch of training_step calls: "Epoch 0/-2" said nothing

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        items.update(progress_items(trainer, pl_module))
        return items


def build_trainer(
    cfg: DictConfig,
    run_dir: Optional[Path],
    callbacks: list,
    loggers: list | bool,
    *,
    checkpoints: bool = True,
    **trainer_kwargs,
) -> L.Trainer:
    """trainer_kwargs replace the config's Trainer arguments: a sweep rank pins its own device
    (accelerator, devices=[local_rank], strategy=SingleDeviceStrategy) so Lightning never sets up DDP."""
    cbs = list(callbacks)
    terminal = sys.stdout.isatty()
    if cfg.train.progress_bar:
        cbs += [GrokProgressBar() if terminal else PlainProgress(), ModelSize()]
    if checkpoints and run_dir is not None and not any(isinstance(cb, RunCheckpoint) for cb in cbs):
        cbs.append(RunCheckpoint(run_dir, C.checkpoint_every(cfg), cfg.train.keep_checkpoints))
    kwargs = dict(
        accelerator=cfg.train.accelerator,
        devices=cfg.train.devices,
        max_steps=C.budget(cfg).cap,  # the nominal max_steps, or the adaptive budget's cap
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=loggers,
        callbacks=cbs,
        enable_progress_bar=bool(cfg.train.progress_bar) and terminal,
        enable_model_summary=False,
        enable_checkpointing=False,  # RunCheckpoint instead of Lightning's ModelCheckpoint
        default_root_dir=str(run_dir) if run_dir else None,
        precision="32-true",  # dtypes are the model's own choice (see model.compute_dtype)
    )
    kwargs.update(slurm_kwargs(run_dir))
    kwargs.update(trainer_kwargs)
    return L.Trainer(**kwargs)


def slurm_kwargs(run_dir: Optional[Path]) -> dict:
    """Under SLURM, Lightning's own requeue handler is off: on SIGUSR1 it saved hpc_ckpt_*.ckpt into
    default_root_dir and each rank requeued the job itself; a sweep batch (no run dir) had the submit
    directory there, and the next batch of the requeued job loaded that checkpoint of another batch.
    Runs resume from their own last.ckpt and sweeps from their batch files; a batch's root is an
    empty directory of its own, where no old hpc checkpoint can be."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return {}
    import tempfile

    root = str(run_dir) if run_dir else tempfile.mkdtemp(prefix="grok-batch-root-")
    return {"plugins": [SLURMEnvironment(auto_requeue=False)], "default_root_dir": root}


class RunCheckpoint(L.Callback):
    """checkpoints/last.ckpt, always the newest state (rewritten atomically: never versioned, never
    half written), plus step=<N>.ckpt every `every` steps, of which the newest `keep` stay (-1: all);
    a step file saved with last.ckpt is a hard link to it, so the pair costs the disk one copy.
    Before each save the CSV rows are flushed (so a kill loses none a resume would not remeasure)
    and the weights and optimiser state are checked: a non-finite state is a divergence, not a
    checkpoint. Lightning's ModelCheckpoint versioned last.ckpt on resume (last-v1.ckpt) and
    remembered its old folder when a run directory moved."""

    def __init__(self, run_dir: Path, every: int, keep: int = -1):
        self.folder = Path(run_dir) / "checkpoints"
        self.every, self.keep = every, keep
        self.saved_step: Optional[int] = None

    @property
    def last_path(self) -> Path:
        return self.folder / "last.ckpt"

    def on_train_start(self, trainer, pl_module) -> None:
        self.saved_step = trainer.global_step if trainer.ckpt_path else None
        for stale in self.folder.glob(".*.ckpt.*"):  # half-written by a killed run (we hold the lock)
            stale.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every and trainer.global_step % self.every == 0:
            self.save(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer, pl_module)  # the final (or interrupted) step: what a resume continues

    def save(self, trainer, pl_module) -> None:
        step = trainer.global_step
        if step == self.saved_step or not trainer.is_global_zero:
            return
        if not finite_state(pl_module, trainer.optimizers):
            raise Diverged(step - 1)
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger):
                logger.save()
        buf = io.BytesIO()
        torch.save(trainer._checkpoint_connector.dump_checkpoint(weights_only=False), buf)
        self.folder.mkdir(parents=True, exist_ok=True)
        runs.atomic_write_bytes(self.last_path, buf.getvalue())  # first: last.ckpt is never older
        if self.every and step % self.every == 0:
            # the same bytes: a hard link, not a second copy (last.ckpt's next write is a new file)
            runs.atomic_link(self.last_path, self.folder / f"step={step}.ckpt")
            self.prune()
        self.saved_step = step

    def prune(self) -> None:
        if self.keep < 0:
            return
        found = run_files.step_files(self.folder, versioned=False)
        for _, path in found[: max(len(found) - self.keep, 0)]:
            path.unlink(missing_ok=True)


def finite_state(module, optimizers) -> bool:
    """Whether every parameter and every floating optimiser state tensor is finite (one host sync)."""
    tensors = [p.detach() for p in module.parameters()]
    for opt in optimizers:
        for state in opt.state.values():
            tensors += [v for v in state.values() if torch.is_tensor(v) and v.is_floating_point()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True

"""Builds the Lightning Trainer of a run: loggers (CSV always, W&B online or offline), progress
bar, model summary, checkpoints."""

from __future__ import annotations

import csv
import io
import netrc
import os
import warnings
from pathlib import Path
from typing import Optional

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, RichModelSummary, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig, OmegaConf

from grok_lightning import config as C
from grok_lightning import runs

# We log at our own cadence through logger.log_metrics, so Lightning's per-epoch logging interval
# check does not apply; the pytree notice comes from Lightning itself.
warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")


class GrokProgressBar(RichProgressBar):
    """Shows the optimiser step and the last logged accuracies and losses of model 0."""

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        items["step"] = trainer.global_step
        latest = getattr(pl_module, "latest", {})
        for name in ("train/acc", "val/acc", "train/loss", "val/loss"):
            if name in latest:
                items[name] = f"{latest[name]:.4f}" if "acc" in name else f"{latest[name]:.3g}"
        return items


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv (and warns about the run directory's
    other files); a resumed run keeps the rows logged before its checkpoint (later ones are
    measured again) and appends to them."""

    def __init__(self, log_dir: str, keep_before_step: int):
        self.keep_before_step = keep_before_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") and int(r["step"]) < self.keep_before_step]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
        runs.atomic_write_text(path, buf.getvalue())
        self.metrics_keys = header


class RunCSVLogger(CSVLogger):
    """metrics.csv directly in the run directory; `keep_before_step` continues a resumed run's file."""

    def __init__(self, run_dir: Path, keep_before_step: Optional[int] = None):
        super().__init__(save_dir=str(run_dir), name="", version="")
        self.keep_before_step = keep_before_step

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:  # a new run has no metrics.csv yet: nothing to keep
            self._experiment = _ContinuingWriter(self.log_dir, self.keep_before_step or 0)
        return self._experiment


def wandb_credentials_present() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode() -> str:
    """The user's WANDB_MODE if set; online when credentials exist; otherwise offline (no prompt,
    no network wait). Offline runs upload later with `wandb sync <run dir>/wandb/offline-run-*`."""
    mode = os.environ.get("WANDB_MODE")
    if mode in ("online", "offline", "disabled"):
        return mode
    return "online" if wandb_credentials_present() else "offline"


def build_loggers(
    cfg: DictConfig, run_dir: Path, run_id: str, resume_step: Optional[int] = None
) -> list[Logger]:
    loggers: list[Logger] = [RunCSVLogger(run_dir, resume_step)]
    if cfg.logger == "csv":
        return loggers
    try:
        from lightning.pytorch.loggers import WandbLogger

        mode = wandb_mode()
        os.environ.setdefault("WANDB_SILENT", "true")
        wandb_logger = WandbLogger(
            project=cfg.wandb_project,
            name=f"{cfg.task}-{cfg.preset}-{run_id}",
            id=run_id,
            save_dir=str(run_dir),
            mode=mode,
            resume="allow",
            config=OmegaConf.to_container(cfg, resolve=True),
        )
        _ = wandb_logger.experiment  # start it now, so a failure falls back here, not mid-run
        loggers.append(wandb_logger)
    except Exception as exc:  # W&B must never stop training
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if cfg.logger == "wandb":
            warnings.warn(f"W&B unavailable ({msg}); logging to CSV only", stacklevel=2)
        else:
            print(f"[grok_lightning] W&B unavailable ({msg}); logging to CSV only")
    return loggers


# summary.json keys copied into the W&B run summary: both verdicts, side by side.
WANDB_SUMMARY_KEYS = (
    "status",
    "verdict",
    "verdict_text",
    "memorise_step",
    "generalise_step",
    "grok_delay_steps",
    "solved_step",
    "outcome",
    "outcome_reason",
    "disagreement",
    "min_train_loss",
    "min_test_loss",
    "max_ratio",
)


def finish_loggers(loggers: list[Logger], status: str, summary: Optional[dict] = None) -> None:
    """Flush every logger; end the W&B run, which WandbLogger leaves open (a later run in the same
    process would otherwise log into it), after copying the run's verdicts into its summary."""
    for logger in loggers:
        logger.finalize("success" if status == "finished" else "failed")
        if type(logger).__name__ == "WandbLogger":
            if summary:
                run = logger.experiment
                for key in WANDB_SUMMARY_KEYS:
                    if summary.get(key) is not None:
                        run.summary[f"verdicts/{key}"] = summary[key]
            logger.experiment.finish(exit_code=0 if status == "finished" else 1)


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
    if cfg.train.progress_bar:
        cbs += [GrokProgressBar(), RichModelSummary(max_depth=2)]
    if checkpoints and run_dir is not None:
        cbs.append(
            ModelCheckpoint(
                dirpath=str(run_dir / "checkpoints"),
                filename="{step}",
                every_n_train_steps=C.checkpoint_every(cfg),
                save_top_k=-1,
                save_last=True,
            )
        )
    kwargs = dict(
        accelerator=cfg.train.accelerator,
        devices=cfg.train.devices,
        max_steps=cfg.train.max_steps,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=loggers,
        callbacks=cbs,
        enable_progress_bar=bool(cfg.train.progress_bar),
        enable_model_summary=False,
        enable_checkpointing=checkpoints and run_dir is not None,
        default_root_dir=str(run_dir) if run_dir else None,
        precision="32-true",  # dtypes are the model's own choice (see model.compute_dtype)
    )
    kwargs.update(trainer_kwargs)
    return L.Trainer(**kwargs)

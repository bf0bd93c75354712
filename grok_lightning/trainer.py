"""Builds the Lightning Trainer of a run: loggers (CSV always, W&B online or offline), progress
bar, model summary, checkpoints."""

from __future__ import annotations

import netrc
import os
import warnings
from pathlib import Path
from typing import Optional

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, RichModelSummary, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import DictConfig, OmegaConf

from grok_lightning import config as C


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


def build_loggers(cfg: DictConfig, run_dir: Path, run_id: str) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(save_dir=str(run_dir), name="", version="")]
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
        wandb_logger.experiment  # start it now, so a failure falls back here, not mid-run
        loggers.append(wandb_logger)
    except Exception as exc:  # W&B must never stop training
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if cfg.logger == "wandb":
            warnings.warn(f"W&B unavailable ({msg}); logging to CSV only", stacklevel=2)
        else:
            print(f"[grok_lightning] W&B unavailable ({msg}); logging to CSV only")
    return loggers


def build_trainer(
    cfg: DictConfig, run_dir: Optional[Path], callbacks: list, loggers: list | bool, *, checkpoints: bool = True
) -> L.Trainer:
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
    return L.Trainer(
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

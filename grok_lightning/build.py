"""The objects one config trains: the task's data module and a GrokModule of one model per seed."""

from __future__ import annotations

from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from grok_lightning import config as C
from grok_lightning.module import GrokModule
from grok_lightning.schema import OptimConfig
from grok_lightning.tasks import TASKS


def build_module(
    cfg: DictConfig, seeds: Sequence[int], lr: Sequence[float], weight_decay: Sequence[float], **kw
):
    """The task's data module and a GrokModule training one model per seed."""
    task = TASKS[cfg.task]
    datamodule = task.build_datamodule(cfg, seeds)
    module = GrokModule(
        task.build_model(cfg, seeds),
        task.build_objective(cfg),
        lr=lr,
        weight_decay=weight_decay,
        regularization=cfg.optim.regularization,
        betas=(cfg.optim.beta1, cfg.optim.beta2),
        eps=cfg.optim.eps,
        max_steps=cfg.train.max_steps,
        log_every=C.log_every(cfg),
        steps_per_call=cfg.train.steps_per_call,
        budget=C.budget(cfg),
        optim_options=optim_options(cfg),
        **kw,
    )
    module.config_yaml = C.to_yaml(cfg)
    datamodule.n_calls = -(-module.max_steps // cfg.train.steps_per_call)  # up to the budget's cap
    return datamodule, module


# BatchedAdam's options from cfg.optim; a config older than these keys gets the schema's defaults (off)
OPTIM_OPTIONS = ("grokfast", "grokfast_alpha", "grokfast_lamb", "grokfast_window", "warmup_steps")


def optim_options(cfg: DictConfig) -> dict:
    """cfg.optim's Grokfast filter and warmup settings, as BatchedAdam takes them."""
    off = OptimConfig()
    return {k: OmegaConf.select(cfg, f"optim.{k}", default=getattr(off, k)) for k in OPTIM_OPTIONS}


def build_run_module(cfg: DictConfig):
    """build_module for the single model of a run: its seed, learning rate and weight decay."""
    return build_module(cfg, [cfg.train.seed], [cfg.optim.lr], [cfg.optim.weight_decay])

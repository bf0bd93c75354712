"""Training one batch of models of one group together, and the result row of each."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from grok_lightning import histories
from grok_lightning.module import build_module
from grok_lightning.summary import run_summary
from grok_lightning.sweep.launch import trainer_kwargs
from grok_lightning.sweep.spec import Model
from grok_lightning.tasks import TASKS
from grok_lightning.trainer import build_trainer

SUMMARY_COLUMNS = (
    "min_train_loss",
    "min_test_loss",
    "max_ratio",
    "exact_max_ratio",
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
    "fate",
    "stop_reason",
    "key_frequencies",
    "n_key_frequencies",
)


def batch_config(cfg: DictConfig, **train: Any) -> DictConfig:
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
        batch_config(cfg), None, list(callbacks), False, checkpoints=False, **trainer_kwargs(device)
    )
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


def batch_frequencies(cfg: DictConfig, module) -> Optional[tuple]:
    """(neuron frequency [K, n], key frequencies per model) where the task has a Fourier view."""
    if "fourier" not in TASKS[cfg.task].analyses_for(cfg):
        return None
    return histories.learned_frequencies(module.model.W_input)


def model_rows(cfg: DictConfig, module, models: Sequence[Model], freqs: Optional[tuple] = None) -> list[dict]:
    """One row per model from the module's logged history (grok_lightning.summary.run_summary)."""
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
                "final_test_loss": final.get("test/loss"),
                "final_train_acc": final.get("train/acc"),
                "final_test_acc": final.get("test/acc"),
                "steps": None if s["final_step"] is None else s["final_step"] + 1,
                "key_frequencies": None if keys is None else " ".join(map(str, keys)),
                "n_key_frequencies": None if keys is None else len(keys),
            }
        )
    return rows


def padded(models: Sequence[Model]) -> list:
    """The batch as trained: its models, then a copy of the last one (results dropped). Measured on
    a CPU (AVX512, torch 2.13): torch.bmm over one matrix takes torch.mm's kernel, which rounds
    otherwise than over two or more; elementwise kernels (sigmoid, exp in the binary loss) run the
    last (numel mod 32) elements of a tensor through scalar code, 1 ulp off the vector code. With
    the copy, no real model is alone or last, so each one's numbers do not depend on K."""
    return [*models, models[-1]]


def unpadded_frequencies(freqs: Optional[tuple], n: int) -> Optional[tuple]:
    """batch_frequencies of the first n models (a padded batch has a copy after them)."""
    return None if freqs is None else (freqs[0][:n], freqs[1][:n])

"""A run's end-of-run summary (summary.json), built once from the module's one stacked history:
the final metrics, both verdicts (grok_lightning.outcome, via GrokModule.verdicts) and what each
analysis callback left at the end of the run."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from grok_lightning.module import METRICS


def run_summary(cfg: DictConfig, module, k: int = 0) -> dict:
    """Model k's final metrics, final step and both verdicts."""
    steps, values = module.history_tensor()
    verdicts = module.verdicts(
        k, loss_threshold=cfg.outcome.loss_threshold, ratio_threshold=cfg.outcome.ratio_threshold
    )
    final = dict(zip(METRICS, values[-1, k].tolist())) if steps else {}
    return {"final": final, "final_step": steps[-1] if steps else None, **verdicts}


def history_of(module, k: int = 0):
    """Model k's logged metrics as a record History (numpy, on the host)."""
    from grok_lightning.record import History

    steps, values = module.history_tensor()
    return History(np.asarray(steps, dtype=np.int64), METRICS, values[:, k].numpy().copy())


def callbacks_summary(callbacks) -> dict:
    """The callbacks' parts of summary.json, merged in callback order; their seconds under one
    `callback_seconds` mapping."""
    merged: dict = {}
    for cb in callbacks:
        part = cb.summary_part() if hasattr(cb, "summary_part") else {}
        for key, value in part.items():
            if key == "callback_seconds":
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
    return merged

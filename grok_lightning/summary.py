"""A run's end-of-run summary (summary.json), built once from the module's one stacked history:
the final metrics, both verdicts (grok_lightning.outcome, via GrokModule.verdicts) and what each
analysis callback left at the end of the run."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from grok_lightning import outcome
from grok_lightning.module import METRICS


def run_summary(cfg: DictConfig, module, k: int = 0) -> dict:
    """Model k's final metrics, final step and both verdicts."""
    steps, values = module.history_tensor()
    verdicts = module.verdicts(k, **outcome.rule_settings(cfg.outcome))
    n = module.rows_of(k)  # a model the budget stopped early ends at its own step
    final = dict(zip(METRICS, values[n - 1, k].tolist())) if n else {}
    return {"final": final, "final_step": steps[n - 1] if n else None, **verdicts}


def history_of(module, k: int = 0):
    """Model k's logged metrics as a record History (numpy, on the host)."""
    from grok_lightning.record import History

    steps, values = module.history_tensor()
    n = module.rows_of(k)
    return History(np.asarray(steps[:n], dtype=np.int64), METRICS, values[:n, k].numpy().copy())


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

"""The early warning during training: every `every` steps, model 0's forecast (grok_lightning.
forecast) from its own history so far, for the progress line, summary.json and the explorer.
Only where the stored reference holds a seed sweep of the run's own setting."""

from __future__ import annotations

from typing import Optional

import lightning as L

from grok_lightning import forecast
from grok_lightning.module import METRICS


class EarlyWarning(L.Callback):
    def __init__(self, reference: dict, every: int):
        self.reference, self.every = reference, every
        self.fitted: dict = {}  # one fit per reference grid step (forecast.forecast's cache)
        self.made: list[tuple[int, dict]] = []  # (step, prediction) in order

    @classmethod
    def for_config(cls, cfg) -> Optional["EarlyWarning"]:
        reference = forecast.load_reference(cfg)
        if reference is None:
            return None
        return cls(reference, every=max(cfg.train.max_steps // 50, 1))

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        step = trainer.global_step
        due = step % self.every == 0 or step in forecast.DEFAULT_T  # and where README's numbers are
        if due and step >= self.reference["grid"][0]:
            pred = self.predict(pl_module, step)
            pl_module.latest_forecast = forecast.forecast_line(pred)

    def predict(self, pl_module, step: int) -> dict:
        steps, values = pl_module.history_tensor()
        metrics = {name: values[:, 0, i].numpy() for i, name in enumerate(METRICS)}
        pred = forecast.forecast(steps, metrics, step, self.reference, fitted=self.fitted)
        self.made.append((step, pred))
        return pred

    def summary_part(self) -> dict:
        """The forecasts at the reference's evaluation steps (10,000 and 20,000) and the last one."""
        if not self.made:
            return {}
        at = {str(s): forecast.forecast_line(p) for s, p in self.made if s in forecast.DEFAULT_T}
        step, last = self.made[-1]
        return {
            "forecasts": at,
            "forecast_last": {"step": step, **last, "line": forecast.forecast_line(last)},
        }

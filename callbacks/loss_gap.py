"""LossGap: the test/train loss ratio and the memorise / generalise steps while training, and the
loss and accuracy curves with those steps marked. The outcome rules live in grok_lightning.outcome."""

from __future__ import annotations

import math

from grok_lightning import figures, outcome

from ._base import AnalysisCallback


class LossGap(AnalysisCallback):
    """gap/ratio (test loss / train loss, latest), gap/max_ratio, gap/memorise_step and
    gap/generalise_step once reached (the gap itself, gap/loss, is logged by the module)."""

    key, prefix = "loss_gap", "gap"

    def measure(self, pl_module) -> dict[str, float]:
        latest = getattr(pl_module, "latest", {})
        if not latest:
            return {}
        m = self.marks(pl_module)
        train, test = latest["train/loss"], latest["test/loss"]
        out = {"ratio": test / train if train > 0 else math.inf, "max_ratio": m["max_ratio"]}
        for name in ("memorise_step", "generalise_step"):
            if m[name] is not None:
                out[name] = m[name]
        return out

    def finals(self, pl_module, step: int):
        steps, values = pl_module.history_tensor()
        if not steps:
            return {}
        from grok_lightning.module import METRICS

        col = {name: values[:, 0, i].tolist() for i, name in enumerate(METRICS)}
        m = self.marks(pl_module)
        fig = figures.training_curves(
            steps,
            col["train/loss"],
            col["test/loss"],
            col["train/acc"],
            col["test/acc"],
            memorise_step=m["memorise_step"],
            generalise_step=m["generalise_step"],
            verdicts=outcome.headline(m) if m.get("verdict") else None,
            title=f"{self.cfg.task} / {self.cfg.preset}",
        )
        return {"curves": fig}

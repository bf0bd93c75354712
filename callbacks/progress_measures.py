"""ProgressMeasures: Nanda et al. 2023's restricted loss (logits kept to the key frequencies) and
excluded loss (key frequencies removed, train pairs), logged over training and drawn at the end."""

from __future__ import annotations

from grok_lightning import figures
from grok_lightning import fourier as fo
from grok_lightning.module import METRICS

from ._base import AnalysisCallback, collapsed_weights


class ProgressMeasures(AnalysisCallback):
    key, prefix = "progress_measures", "progress"

    def measure(self, pl_module) -> dict[str, float]:
        model = pl_module.model
        if not pl_module.data or not hasattr(model, "act"):
            return {}
        W_a, W_b, W_out = (w[:1] for w in collapsed_weights(model))
        inputs, targets = pl_module.data["train"]
        train_logits = model(*inputs)[:1]  # the module's forward, so precision and flags match
        key_mask = fo.key_frequency_mask(fo.dft_input(W_a))
        values = fo.progress_measures(
            W_a, W_b, W_out, model.act, key_mask, train_logits, targets[:1], pl_module.objective.loss
        )
        values["n_key_freqs"] = key_mask.sum(-1)
        return {name: v[0] for name, v in values.items()}

    def finals(self, pl_module, step: int):
        return {"progress": progress_figure(self, pl_module)} if self.steps else {}

    def summary(self, pl_module) -> dict:
        if not self.steps:
            return {}
        return {"progress": {name: float(f"{v[-1]:.4g}") for name, v in self.series.items()}}


def progress_figure(cb: AnalysisCallback, pl_module):
    """A callback's restricted / excluded loss series against model 0's train and test loss (the
    MLP's ProgressMeasures and the transformer's TransformerCircuit draw the same figure)."""
    loss_steps, values = pl_module.history_tensor()
    return figures.progress_curves(
        cb.steps,
        cb.series["restricted_loss"],
        cb.series["excluded_loss"],
        loss_steps,
        values[:, 0, METRICS.index("train/loss")].tolist(),
        values[:, 0, METRICS.index("test/loss")].tolist(),
        **cb.step_marks(pl_module),
    )

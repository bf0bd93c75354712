"""WeightHeatmaps: the explorable's red/blue pictures of W_input and W_output, as frames over
training (the W&B image slider replays them: noise while memorising, periodic after grokking)."""

from __future__ import annotations

from omegaconf import OmegaConf

from grok_lightning import figures

from ._base import IMAGE_DIVISOR, AnalysisCallback, collapsed_weights


class WeightHeatmaps(AnalysisCallback):
    """Draws every `frames_every` steps (default max_steps // 10) and at the end. Where the task declares
    the "bit_mass" analysis (sparse parity), W_input is drawn one row per input bit plus the bias
    row, the first k bits marked; otherwise one row per neuron."""

    key, prefix = "weight_heatmaps", "figures"
    default_scalars_every = 0  # images only
    default_frames_every = IMAGE_DIVISOR

    def __init__(self, cfg, task, run_dir, scalars_every: int = 0, frames_every: int = 0):
        super().__init__(cfg, task, run_dir, scalars_every=-1, frames_every=frames_every)

    def _figure(self, pl_module, step: int, title: str):
        W_in, _, W_out = collapsed_weights(pl_module.model)
        if "bit_mass" in self.task.analyses:
            k = OmegaConf.select(self.cfg, "data.k", default=3)
            return figures.parity_heatmaps(W_in[0], W_out[0], k=k, step=step, title=title)
        return figures.weight_heatmaps(W_in[0], W_out[0], step=step, title=title)

    def frames(self, pl_module, step: int):
        return {"weights": self._figure(pl_module, step, "Weights")}

    def finals(self, pl_module, step: int):
        return {"weights_final": self._figure(pl_module, step, "Weights (end of run)")}

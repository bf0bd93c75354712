"""DFTSparsity: how concentrated the weights' Fourier spectrum is, logged over training."""

from __future__ import annotations

from grok_lightning import figures
from grok_lightning import fourier as fo

from ._base import IMAGE_DIVISOR, AnalysisCallback, collapsed_weights


class DFTSparsity(AnalysisCallback):
    """fourier/ scalars (Gini, top-k energy share, key-frequency count, neuron IPR, input and output
    side) every `scalars_every` steps; the frequency x neuron DFT heatmap every `frames_every` steps; at the
    end, the sparsity curves and the final DFT heatmap."""

    key, prefix = "dft_sparsity", "fourier"
    default_frames_every = IMAGE_DIVISOR // 2  # five frames: the weight heatmaps carry the slider

    def __init__(self, *args, top_k: int = 5, **kw):
        super().__init__(*args, **kw)
        self.top_k = top_k

    def measure(self, pl_module) -> dict[str, float]:
        W_in, _, W_out = collapsed_weights(pl_module.model)
        values = fo.sparsity_measures(W_in[:1], W_out[:1], self.top_k)
        return {name: v[0] for name, v in values.items()}

    def _dft_figure(self, pl_module, step: int, title: str):
        W_in, _, W_out = collapsed_weights(pl_module.model)
        dft_in, dft_out = fo.dft_input(W_in[0]), fo.dft_output(W_out[0])
        return figures.dft_heatmaps(
            fo.frequency_norms(dft_in),
            fo.frequency_norms(dft_out),
            step=step,
            neuron_freqs=fo.neuron_frequencies(dft_in).tolist(),
            title=title,
        )

    def frames(self, pl_module, step: int):
        return {"dft": self._dft_figure(pl_module, step, "Fourier spectrum of the weights")}

    def finals(self, pl_module, step: int):
        out = {"dft_final": self._dft_figure(pl_module, step, "Fourier spectrum of the weights (end of run)")}
        if self.steps:
            out["sparsity"] = figures.sparsity_curves(
                self.steps, self.series, top_k=self.top_k, **self.step_marks(pl_module)
            )
        return out

    def summary(self, pl_module) -> dict:
        W_in, _, W_out = collapsed_weights(pl_module.model)
        dft_in = fo.dft_input(W_in[0])
        final = {
            name: round(float(v[0]), 4)
            for name, v in fo.sparsity_measures(W_in[:1], W_out[:1], self.top_k).items()
        }
        return {"key_frequencies": fo.key_frequencies(dft_in), "final_sparsity": final}

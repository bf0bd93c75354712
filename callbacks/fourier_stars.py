"""FourierStars: neurons grouped by frequency, their (cos, sin) "star" charts on the input and output
side, and each group's logit wave, at the end of the run (and every `frames_every` steps if set)."""

from __future__ import annotations

from grok_lightning import figures
from grok_lightning import fourier as fo

from ._base import AnalysisCallback, collapsed_weights

MAX_GROUPS = 8  # a grokked model has a handful; a memorising one scatters neurons over many


def largest_groups(W_input, max_groups: int = MAX_GROUPS) -> dict[int, list[int]]:
    """One model's frequency groups, the max_groups with the most Fourier energy at their own
    frequency, ascending by frequency."""
    dft_in = fo.dft_input(W_input)
    norms = fo.frequency_norms(dft_in)  # [n_freq + 1, n]
    groups = fo.group_by_frequency(fo.neuron_frequencies(dft_in))
    strength = {f: float(norms[f, neurons].square().sum()) for f, neurons in groups.items()}
    keep = sorted(groups, key=lambda f: -strength[f])[:max_groups]
    return {f: groups[f] for f in sorted(keep)}


def star_groups(W_input, W_output, max_groups: int = MAX_GROUPS) -> list[dict]:
    """The star chart data: per group, each neuron's (cos, sin) pair on both sides."""
    dft_in, dft_out = fo.dft_input(W_input), fo.dft_output(W_output)
    freqs = fo.neuron_frequencies(dft_in)
    xy_in, xy_out = fo.neuron_phases(dft_in, freqs), fo.neuron_phases(dft_out, freqs)
    return [
        {"freq": f, "neurons": neurons, "in_xy": xy_in[neurons], "out_xy": xy_out[neurons]}
        for f, neurons in largest_groups(W_input, max_groups).items()
    ]


class FourierStars(AnalysisCallback):
    key, prefix = "fourier_stars", "fourier"
    default_scalars_every = 0  # end of run only, unless `frames_every` asks for frames

    def __init__(self, cfg, task, run_dir, scalars_every: int = 0, frames_every: int = 0):
        super().__init__(
            cfg, task, run_dir, scalars_every=-1, frames_every=frames_every if frames_every > 0 else -1
        )

    def _figures(self, pl_module):
        W_a, W_b, W_out = (w[0] for w in collapsed_weights(pl_module.model))
        n_groups = len(fo.group_by_frequency(fo.neuron_frequencies(fo.dft_input(W_a))))
        more = f" ({n_groups - MAX_GROUPS} weaker groups not shown)" if n_groups > MAX_GROUPS else ""
        out = {
            "stars": figures.fourier_stars(
                star_groups(W_a, W_out),
                title=f"Neurons by frequency: (cos k, sin k) at their frequency k{more}",
            )
        }
        act = getattr(pl_module.model, "act", None)
        if act is not None:
            freqs = fo.neuron_frequencies(fo.dft_input(W_a))
            shown = set(largest_groups(W_a))
            waves = [w for w in fo.frequency_group_waves(W_a, W_b, W_out, act, freqs) if w["freq"] in shown]
            out["logit_waves"] = figures.logit_waves(
                waves, W_out.shape[-1], title=f"Each frequency group's logits: a cosine of (a + b - c){more}"
            )
        return out

    def frames(self, pl_module, step: int):
        return self._figures(pl_module)

    def finals(self, pl_module, step: int):
        return self._figures(pl_module)

    def summary(self, pl_module) -> dict:
        W_a, _, _ = collapsed_weights(pl_module.model)
        freqs = fo.neuron_frequencies(fo.dft_input(W_a[0]))
        groups = {str(f): n for f, n in fo.group_by_frequency(freqs).items()}
        return {"neuron_frequency": freqs.tolist(), "frequency_groups": groups}

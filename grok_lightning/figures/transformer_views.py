"""The transformer's pictures (callbacks/transformer_circuit.py): the embedding's Fourier spectrum
with its key frequencies and the Gini over training, the "=" token's attention to a per head over
the (a, b) grid, and how many MLP neurons each frequency's cluster holds. numpy in, Figure out."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from grok_lightning.figures.canvas import as_float_array, new_figure, step_title


def embedding_spectrum(
    norms: np.ndarray,
    key_freqs: Sequence[int],
    gini_steps: Sequence[int],
    gini: Sequence[float],
    *,
    step: Optional[int] = None,
) -> Figure:
    """norms [n_freq] (index 0 = frequency 1): bars, key frequencies dark; beside it the Gini of
    the spectrum over training (Nanda et al. 2023 track it: it rises as the embedding goes sparse)."""
    fig = new_figure(11, 3.8)
    fig.set_layout_engine("constrained")
    ax, ax_g = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    freqs = np.arange(1, len(norms) + 1)
    keys = set(int(k) for k in key_freqs)
    colors = ["#1f3b73" if f in keys else "#a9b8d6" for f in freqs]
    ax.bar(freqs, norms, color=colors, width=0.85)
    for f in sorted(keys):
        ax.annotate(str(f), (f, norms[f - 1]), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("frequency k")
    ax.set_ylabel("norm of W_E in frequency k")
    ax.set_title(step_title(f"Token embedding's Fourier spectrum (key: {sorted(keys)})", step), fontsize=10)
    ax_g.plot(as_float_array(gini_steps), as_float_array(gini), color="#1f3b73", lw=1.6)
    ax_g.set_ylim(0, 1)
    ax_g.set_xlabel("step")
    ax_g.set_title("Gini of the spectrum", fontsize=10)
    ax_g.grid(alpha=0.3)
    return fig


def attention_to_a(att: np.ndarray, *, step: Optional[int] = None) -> Figure:
    """att [heads, p (a), p (b)]: the attention weight the "=" position gives to token a, one
    heatmap per head (the rest goes to b and to "=" itself)."""
    n_heads = att.shape[0]
    fig = new_figure(3.1 * n_heads + 1.2, 3.6)
    fig.set_layout_engine("constrained")
    axes = np.atleast_1d(fig.subplots(1, n_heads, sharey=True))
    for h, ax in enumerate(axes):
        im = ax.imshow(att[h], cmap="viridis", vmin=0, vmax=1, origin="lower", interpolation="nearest")
        ax.set_title(f"head {h}: mean {att[h].mean():.2f}", fontsize=9)
        ax.set_xlabel("b")
        if h == 0:
            ax.set_ylabel("a")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label='attention from "=" to a')
    fig.suptitle(step_title("Attention of the final position to the first operand", step), fontsize=10)
    return fig


def neuron_clusters(
    freqs: np.ndarray,
    frac: np.ndarray,
    threshold: float,
    *,
    n_freq: Optional[int] = None,
    step: Optional[int] = None,
) -> Figure:
    """freqs, frac [d_mlp]: each neuron's best frequency and the share of its activation it
    explains; bars count the neurons explained >= threshold per frequency (the paper's clusters)."""
    fig = new_figure(9, 3.4)
    fig.set_layout_engine("constrained")
    ax = fig.subplots()
    clustered = freqs[frac >= threshold]
    values, counts = np.unique(clustered, return_counts=True)
    ax.bar(values, counts, color="#1f3b73", width=0.85)
    for v, c in zip(values, counts):
        ax.annotate(str(int(v)), (v, c), ha="center", va="bottom", fontsize=8)
    ax.set_xlim(0.5, (n_freq or max(int(freqs.max(initial=1)), 1)) + 0.5)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("frequency k")
    ax.set_ylabel("MLP neurons")
    share = f"{len(clustered)} of {len(freqs)} neurons"
    title = f"Neuron clusters: {share} explained >= {threshold:.2f} by one frequency"
    ax.set_title(step_title(title, step), fontsize=10)
    return fig

"""Heatmaps of the weights: W_input and W_output per neuron, their Fourier spectrum, the parity bits."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from grok_lightning.figures.canvas import as_float_array, diverging_heatmap, new_figure, step_title


def weight_heatmaps(
    W_input,
    W_output,
    *,
    step: Optional[int] = None,
    title: str = "Weights",
    row_order: Optional[Sequence[int]] = None,
) -> Figure:
    """W_input [p, n] and W_output [n, p], one row per neuron, red/blue centred on 0."""
    W_in, W_out = as_float_array(W_input).T, as_float_array(W_output)
    n = W_in.shape[0]
    if row_order is not None:
        W_in, W_out = W_in[list(row_order)], W_out[list(row_order)]
    height = 1.5 + 0.14 * max(n, 12)
    fig = new_figure(12, height)
    axes = fig.subplots(1, 2)
    for ax, M, name, xlabel in (
        (axes[0], W_in, "W_input", "input token a (or b)"),
        (axes[1], W_out, "W_output", "output logit c"),
    ):
        diverging_heatmap(ax, fig, M)
        ax.set_title(f"{name}: {M.shape[0]} neurons x {M.shape[1]} tokens", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("neuron")
    fig.suptitle(step_title(title, step), fontsize=12)
    fig.subplots_adjust(left=0.05, right=0.94, bottom=0.55 / height, top=1 - 0.6 / height, wspace=0.32)
    return fig


def dft_heatmaps(
    norms_in,
    norms_out,
    *,
    step: Optional[int] = None,
    neuron_freqs: Optional[Sequence[int]] = None,
    title: str = "Fourier spectrum of the weights",
) -> Figure:
    """Per-neuron frequency norms [n_freq + 1, n] of both sides (row 0 = constant): frequency x neuron.
    Goes from a flat haze (memorising) to a few bright rows (generalising)."""
    A, B = as_float_array(norms_in), as_float_array(norms_out)
    n_freq, n = A.shape[0] - 1, A.shape[1]
    fig = new_figure(12, 6.0)
    axes = fig.subplots(1, 2)
    for ax, M, name in ((axes[0], A, "W_input"), (axes[1], B, "W_output")):
        im = ax.imshow(
            M,
            cmap="magma",
            aspect="auto",
            interpolation="nearest",
            vmin=0,
            extent=(-0.5, n - 0.5, n_freq + 0.5, -0.5),
        )
        fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02).set_label("norm of (cos k, sin k) coefficients")
        if neuron_freqs is not None:
            ax.scatter(
                np.arange(n),
                np.asarray(neuron_freqs),
                s=14,
                facecolors="none",
                edgecolors="#00e5ff",
                lw=0.9,
                label="neuron's frequency (input side)",
            )
        ax.set_title(f"DFT of {name}", fontsize=10)
        ax.set_xlabel("neuron")
        ax.set_ylabel("frequency k (0 = constant)")
    if neuron_freqs is not None:
        axes[0].legend(fontsize=7, loc="lower right", framealpha=0.8)
    fig.suptitle(step_title(title, step), fontsize=12)
    fig.subplots_adjust(left=0.06, right=0.95, bottom=0.09, top=0.9, wspace=0.3)
    return fig


def parity_heatmaps(
    W_input, W_output, *, k: int, step: Optional[int] = None, title: str = "Sparse parity weights"
) -> Figure:
    """W_input [n_bits + 1, n] with one row per input (the bits, then the bias), neurons as columns,
    and W_output [n, 1] as a strip under it; the first k (relevant) bits are bracketed."""
    W_in, W_out = as_float_array(W_input), as_float_array(W_output).reshape(1, -1)
    rows, n = W_in.shape
    n_bits = rows - 1
    fig = new_figure(max(6.5, 2.5 + 0.17 * n), 8.0)
    grid = fig.add_gridspec(2, 1, height_ratios=[rows, 4], hspace=0.3)
    ax_in, ax_out = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    diverging_heatmap(ax_in, fig, W_in)
    labels = [f"bit {i + 1}" for i in range(n_bits)] + ["bias"]
    ax_in.set_yticks(range(rows))
    ax_in.set_yticklabels(labels, fontsize=6.5)
    for t in ax_in.get_yticklabels()[:k]:
        t.set_fontweight("bold")
    ax_in.axhline(k - 0.5, color="black", lw=1.2, ls="--")
    ax_in.axhline(n_bits - 0.5, color="gray", lw=0.8)
    ax_in.set_title(f"W_input [{rows} x {n}]: first {k} bits above the dashed line", fontsize=10)
    ax_in.set_xlabel("neuron")
    diverging_heatmap(ax_out, fig, W_out)
    ax_out.set_yticks([])
    ax_out.set_xlabel("neuron")
    ax_out.set_title("W_output (one logit)", fontsize=10)
    fig.suptitle(step_title(title, step), fontsize=12)
    fig.subplots_adjust(left=0.12, right=0.9, bottom=0.07, top=0.92)
    return fig

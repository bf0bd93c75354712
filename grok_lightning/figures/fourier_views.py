"""Views at one frequency: each neuron's (cos, sin) pair as a star or on its circle, and each
frequency group's logits as a cosine of (a + b - c)."""

from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from grok_lightning.figures.canvas import as_float_array, new_figure


def _grid_shape(count: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(max_cols, max(count, 1))
    return -(-max(count, 1) // cols), cols


def fourier_stars(
    groups: Sequence[Mapping],
    *,
    title: str = "Neurons by frequency: (cos k, sin k) at their frequency k",
    max_cols: int = 6,
) -> Figure:
    """For each frequency group, each neuron's (cos, sin) coefficient pair at the group's
    frequency as a spoke from the origin: input side on top, output side below (it turns twice
    as fast). groups: dicts with freq, neurons, in_xy [m, 2], out_xy [m, 2]. Groups wrap onto
    further rows of (input, output) pairs after max_cols."""
    G = max(len(groups), 1)
    block_rows = -(-G // max_cols)
    cols = -(-G // block_rows)  # balanced rows: 8 groups -> 2 x 4, not 6 + 2
    cell = 2.35
    width, height = cols * cell + 1.0, block_rows * 2 * cell + 1.0
    fig = new_figure(width, height)
    axes = fig.subplots(2 * block_rows, cols, squeeze=False)
    for j in range(block_rows * cols):
        r0, c = 2 * (j // cols), j % cols
        if j >= len(groups):
            axes[r0, c].set_axis_off()
            axes[r0 + 1, c].set_axis_off()
            continue
        g = groups[j]
        for row, key, side in ((r0, "in_xy", "input"), (r0 + 1, "out_xy", "output")):
            ax = axes[row, c]
            xy = as_float_array(g[key]).reshape(-1, 2)
            r = float(np.abs(xy).max()) * 1.2 if xy.size else 1.0
            r = r if r > 0 else 1.0
            for i, ((x, y), neuron) in enumerate(zip(xy, g["neurons"], strict=True)):
                color = f"C{i % 10}"
                ax.plot([0, x], [0, y], color=color, lw=1.6)
                ax.plot([x], [y], "o", color=color, ms=4)
                ax.annotate(str(neuron), (x, y), fontsize=6.5, xytext=(2, 2), textcoords="offset points")
            ax.axhline(0, color="gray", lw=0.5)
            ax.axvline(0, color="gray", lw=0.5)
            ax.set_xlim(-r, r)
            ax.set_ylim(-r, r)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=6)
            if row == r0:
                plural = "s" if len(g["neurons"]) != 1 else ""
                ax.set_title(f"k = {g['freq']}  ({len(g['neurons'])} neuron{plural})", fontsize=9)
            ax.set_xlabel(f"cos {g['freq']}", fontsize=7, labelpad=1)
            ax.set_ylabel(
                f"{side} side\nsin {g['freq']}" if c == 0 else f"sin {g['freq']}", fontsize=7, labelpad=1
            )
    # Wrap the title to the figure's width: a single frequency group makes a narrow figure.
    lines = textwrap.wrap(title, width=max(24, int(width * 12))) + textwrap.wrap(
        "top: W_input, bottom: W_output (turns twice as fast)", width=max(24, int(width * 12))
    )
    fig.suptitle("\n".join(lines), fontsize=10)
    fig.subplots_adjust(
        left=0.8 / width,
        right=1 - 0.15 / width,
        bottom=0.4 / height,
        top=1 - (0.35 + 0.2 * len(lines)) / height,
        wspace=0.45,
        hspace=0.45,
    )
    return fig


def logit_waves(
    waves: Sequence[Mapping], p: int, *, title: str = "Each frequency group's logits: a cosine of (a + b - c)"
) -> Figure:
    """Per group: its mean logit contribution at each d = (a + b - c) mod p (points, with the
    spread over the (a, b) cells of that d), against the phase u = f d mod p, so a group that
    computes cos(2 pi f (a + b - c) / p) shows one clean period; and the fitted cosine."""
    rows, cols = _grid_shape(len(waves))
    height = 2.6 * rows + 0.9
    fig = new_figure(3.4 * cols + 0.4, height)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    d = np.arange(p)
    fine = np.linspace(0, p, 400)
    for ax, w in zip(axes, waves, strict=False):
        f = int(w["freq"])
        u = (f * d) % p
        wave, spread = as_float_array(w["wave"]), as_float_array(w["spread"])
        ax.errorbar(
            u,
            wave,
            yerr=spread,
            fmt="o",
            ms=2.5,
            lw=0.6,
            color="#1f77b4",
            ecolor="#9ecae1",
            label="mean over (a, b), ± std",
        )
        smooth = w["offset"] + w["amplitude"] * np.cos(2 * np.pi * fine / p + w["phase"])
        ax.plot(fine, smooth, color="black", ls="--", lw=1.0, label="A cos(2π u / p + φ)")
        plural = "s" if len(w["neurons"]) != 1 else ""
        ax.set_title(f"k = {f} ({len(w['neurons'])} neuron{plural}), R² = {w['r2']:.2f}", fontsize=9)
        ax.set_xlabel(f"u = {f} (a + b - c) mod {p}", fontsize=8)
        ax.set_ylabel("logit contribution", fontsize=8)
        ax.set_xlim(-1, p)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(waves) :]:
        ax.set_axis_off()
    if len(waves):
        axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(
        left=0.08, right=0.98, bottom=0.55 / height, top=1 - 0.75 / height, wspace=0.3, hspace=0.55
    )
    return fig


def neuron_circles(in_xy, out_xy, *, title: str) -> Figure:
    """Each neuron's (cos, sin) pair at one frequency on its circle, input side beside output side,
    joined in neuron order: the output polygon visits the circle twice as fast."""
    fig = new_figure(8, 4.4)
    axes = fig.subplots(1, 2)
    t = np.linspace(0, 2 * np.pi, 200)
    for ax, xy, side in (
        (axes[0], as_float_array(in_xy), "W_input (input side)"),
        (axes[1], as_float_array(out_xy), "W_output (output side)"),
    ):
        radius = float(np.linalg.norm(xy, axis=1).max()) or 1.0
        ax.plot(radius * np.cos(t), radius * np.sin(t), color="#cccccc", lw=1)
        loop = np.vstack([xy, xy[:1]])
        ax.plot(loop[:, 0], loop[:, 1], color="#888888", lw=1, ls="--")
        for i, (x, y) in enumerate(xy):
            ax.plot([0, x], [0, y], color=f"C{i % 10}", lw=1.4)
            ax.plot([x], [y], "o", color=f"C{i % 10}", ms=7)
            ax.annotate(f"neuron {i}", (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
        lim = radius * 1.35
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
        ax.set_xlabel("cos coefficient")
        ax.set_ylabel("sin coefficient")
        ax.set_title(side, fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.12, top=0.84, wspace=0.3)
    return fig

"""Figures: arrays in, a matplotlib Figure out. No Lightning, no W&B, no global pyplot state.

Every figure is built on its own Agg canvas (`matplotlib.figure.Figure` + `FigureCanvasAgg`), so
drawing from a training process never opens a window or touches a user's backend choice. Layouts
are set by hand rather than by a layout engine: that engine costs as much as the drawing itself.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from grok_lightning.runs import _UMASK

TRAIN, TEST = "#1f77b4", "#d62728"
MEMORISE, GENERALISE = "#ff7f0e", "#2ca02c"
DIVERGING = "RdBu_r"  # red positive, blue negative, white at 0
DPI = 90


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Write a PNG atomically (temporary name, then rename): a logger or reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=DPI, pil_kwargs={"compress_level": 3})
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would have
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _step_title(title: str, step: Optional[int]) -> str:
    return f"{title} — step {step:,}" if step is not None else title


def _mark_steps(ax, memorise_step: Optional[int], generalise_step: Optional[int]) -> None:
    if memorise_step is not None:
        ax.axvline(
            memorise_step, color=MEMORISE, ls="--", lw=1.2, label=f"memorised (step {memorise_step:,})"
        )
    if generalise_step is not None:
        ax.axvline(
            generalise_step,
            color=GENERALISE,
            ls="--",
            lw=1.2,
            label=f"generalised (step {generalise_step:,})",
        )


def _diverging(ax, fig, M: np.ndarray, *, label: str = "weight"):
    vmax = float(np.nanmax(np.abs(M))) if M.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(
        M, cmap=DIVERGING, norm=TwoSlopeNorm(0.0, -vmax, vmax), aspect="auto", interpolation="nearest"
    )
    bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label(label)
    return im


# ------------------------------------------------------------------------------------------ curves
def training_curves(
    steps: Sequence[int],
    train_loss: Sequence[float],
    test_loss: Sequence[float],
    train_acc: Sequence[float],
    test_acc: Sequence[float],
    *,
    memorise_step: Optional[int] = None,
    generalise_step: Optional[int] = None,
    verdicts: Optional[str] = None,
    title: str = "Training curves",
) -> Figure:
    """Loss (log scale) and accuracy, train vs test, with the memorise and generalise steps marked;
    verdicts: a line or two under the title (grok_lightning.outcome.headline)."""
    fig = new_figure(11, 4.2)
    ax_loss, ax_acc = fig.subplots(1, 2)
    steps = _np(steps)
    for ax, (tr, te), ylabel in (
        (ax_loss, (train_loss, test_loss), "loss"),
        (ax_acc, (train_acc, test_acc), "accuracy"),
    ):
        ax.plot(steps, _np(tr), color=TRAIN, lw=1.4, label="train")
        ax.plot(steps, _np(te), color=TEST, lw=1.4, label="test")
        _mark_steps(ax, memorise_step, generalise_step)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    positive = np.concatenate([_np(train_loss), _np(test_loss)])
    if np.any(positive > 0):
        ax_loss.set_yscale("log")
    ax_loss.set_title("loss (log scale)")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_title("accuracy")
    ax_acc.legend(loc="center right", fontsize=8)
    n_lines = 1 + (verdicts.count("\n") + 1 if verdicts else 0)
    fig.suptitle(title + (f"\n{verdicts}" if verdicts else ""), fontsize=10 if verdicts else 12)
    fig.subplots_adjust(left=0.085, right=0.98, bottom=0.13, top=0.86 - 0.05 * n_lines, wspace=0.22)
    return fig


def _series_panel(ax, steps, series: Mapping[str, Sequence[float]], ylabel: str, log: bool = False) -> None:
    for name, values in series.items():
        ax.plot(_np(steps), _np(values), lw=1.4, label=name, marker="." if len(steps) < 40 else None)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)


def sparsity_curves(
    steps: Sequence[int],
    measures: Mapping[str, Sequence[float]],
    *,
    top_k: int = 5,
    memorise_step: Optional[int] = None,
    generalise_step: Optional[int] = None,
    title: str = "Fourier sparsity of the weights over training",
) -> Figure:
    """Four panels of the `fourier.sparsity_measures` series (keys `in_gini`, `out_gini`, ...)."""
    fig = new_figure(12, 6.5)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    panels = [
        ("gini", "Gini of per-frequency norms (0 = flat, 1 = one frequency)", "Gini", (0, 1)),
        (
            f"top{top_k}_energy",
            f"share of Fourier energy in the top {top_k} frequencies",
            "energy share",
            (0, 1),
        ),
        ("n_key_freqs", f"number of key frequencies (>= {2:g}x the uniform energy share)", "count", None),
        ("ipr", "mean neuron inverse participation ratio (1 = one frequency)", "IPR", (0, 1)),
    ]
    for ax, (key, label, ylabel, ylim) in zip(axes, panels, strict=False):
        series = {
            f"{side} ({'W_input' if side == 'in' else 'W_output'})": measures[f"{side}_{key}"]
            for side in ("in", "out")
            if f"{side}_{key}" in measures
        }
        _series_panel(ax, steps, series, ylabel)
        _mark_steps(ax, memorise_step, generalise_step)
        if ylim:
            ax.set_ylim(ylim[0] - 0.02, ylim[1] + 0.02)
        else:
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.set_ylim(bottom=-0.3)
        ax.set_title(label, fontsize=10)
        if not ax.get_subplotspec().is_last_row():
            ax.set_xlabel("")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=12)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.09, top=0.9, wspace=0.18, hspace=0.22)
    return fig


def progress_curves(
    steps: Sequence[int],
    restricted_loss: Sequence[float],
    excluded_loss: Sequence[float],
    loss_steps: Sequence[int],
    train_loss: Sequence[float],
    test_loss: Sequence[float],
    *,
    memorise_step: Optional[int] = None,
    generalise_step: Optional[int] = None,
    title: str = "Progress measures (Nanda et al. 2023)",
) -> Figure:
    """Restricted and excluded loss against the train and test loss, log scale."""
    fig = new_figure(9, 4.6)
    ax = fig.subplots()
    ax.plot(_np(loss_steps), _np(train_loss), color=TRAIN, lw=1.0, alpha=0.6, label="train loss")
    ax.plot(_np(loss_steps), _np(test_loss), color=TEST, lw=1.0, alpha=0.6, label="test loss")
    mk = "." if len(steps) < 40 else None
    ax.plot(
        _np(steps),
        _np(restricted_loss),
        color="#9467bd",
        lw=1.8,
        marker=mk,
        label="restricted loss (key frequencies only, all pairs)",
    )
    ax.plot(
        _np(steps),
        _np(excluded_loss),
        color="#8c564b",
        lw=1.8,
        marker=mk,
        label="excluded loss (key frequencies removed, train pairs)",
    )
    _mark_steps(ax, memorise_step, generalise_step)
    values = np.concatenate([_np(v) for v in (train_loss, test_loss, restricted_loss, excluded_loss)])
    if np.any(values > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.9)
    return fig


# ------------------------------------------------------------------------------------------ heatmaps
def weight_heatmaps(
    W_input,
    W_output,
    *,
    step: Optional[int] = None,
    title: str = "Weights",
    row_order: Optional[Sequence[int]] = None,
) -> Figure:
    """W_input [p, n] and W_output [n, p], one row per neuron, red/blue centred on 0."""
    W_in, W_out = _np(W_input).T, _np(W_output)
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
        _diverging(ax, fig, M)
        ax.set_title(f"{name}: {M.shape[0]} neurons x {M.shape[1]} tokens", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("neuron")
    fig.suptitle(_step_title(title, step), fontsize=12)
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
    A, B = _np(norms_in), _np(norms_out)
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
    fig.suptitle(_step_title(title, step), fontsize=12)
    fig.subplots_adjust(left=0.06, right=0.95, bottom=0.09, top=0.9, wspace=0.3)
    return fig


def parity_heatmaps(
    W_input, W_output, *, k: int, step: Optional[int] = None, title: str = "Sparse parity weights"
) -> Figure:
    """W_input [n_bits + 1, n] with one row per input (the bits, then the bias), neurons as columns,
    and W_output [n, 1] as a strip under it; the first k (relevant) bits are bracketed."""
    W_in, W_out = _np(W_input), _np(W_output).reshape(1, -1)
    rows, n = W_in.shape
    n_bits = rows - 1
    fig = new_figure(max(6.5, 2.5 + 0.17 * n), 8.0)
    grid = fig.add_gridspec(2, 1, height_ratios=[rows, 4], hspace=0.3)
    ax_in, ax_out = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    _diverging(ax_in, fig, W_in)
    labels = [f"bit {i + 1}" for i in range(n_bits)] + ["bias"]
    ax_in.set_yticks(range(rows))
    ax_in.set_yticklabels(labels, fontsize=6.5)
    for t in ax_in.get_yticklabels()[:k]:
        t.set_fontweight("bold")
    ax_in.axhline(k - 0.5, color="black", lw=1.2, ls="--")
    ax_in.axhline(n_bits - 0.5, color="gray", lw=0.8)
    ax_in.set_title(f"W_input [{rows} x {n}]: first {k} bits above the dashed line", fontsize=10)
    ax_in.set_xlabel("neuron")
    _diverging(ax_out, fig, W_out)
    ax_out.set_yticks([])
    ax_out.set_xlabel("neuron")
    ax_out.set_title("W_output (one logit)", fontsize=10)
    fig.suptitle(_step_title(title, step), fontsize=12)
    fig.subplots_adjust(left=0.12, right=0.9, bottom=0.07, top=0.92)
    return fig


def bit_mass_curve(
    steps: Sequence[int],
    share: Sequence[float],
    *,
    k: int,
    n_bits: int,
    memorise_step: Optional[int] = None,
    generalise_step: Optional[int] = None,
    title: str = "Weight mass on the relevant bits",
) -> Figure:
    fig = new_figure(8, 4.2)
    ax = fig.subplots()
    ax.plot(
        _np(steps),
        _np(share),
        color="#9467bd",
        lw=1.8,
        marker="." if len(steps) < 40 else None,
        label=f"share of |W_input| on bits 1..{k}",
    )
    ax.axhline(k / n_bits, color="gray", ls=":", lw=1, label=f"uniform ({k}/{n_bits})")
    _mark_steps(ax, memorise_step, generalise_step)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("share of |W_input| mass")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.9)
    return fig


# ------------------------------------------------------------------------------------------ stars, waves
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
            xy = _np(g[key]).reshape(-1, 2)
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
        wave, spread = _np(w["wave"]), _np(w["spread"])
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
        (axes[0], _np(in_xy), "W_input (input side)"),
        (axes[1], _np(out_xy), "W_output (output side)"),
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

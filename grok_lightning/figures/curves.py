"""Curves over training steps: loss and accuracy, Fourier sparsity, progress measures, parity bit mass."""

from __future__ import annotations

import textwrap
from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from grok_lightning.figures.canvas import TEST, TRAIN, as_float_array, mark_steps, new_figure


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
    steps = as_float_array(steps)
    for ax, (tr, te), ylabel in (
        (ax_loss, (train_loss, test_loss), "loss"),
        (ax_acc, (train_acc, test_acc), "accuracy"),
    ):
        ax.plot(steps, as_float_array(tr), color=TRAIN, lw=1.4, label="train")
        ax.plot(steps, as_float_array(te), color=TEST, lw=1.4, label="test")
        mark_steps(ax, memorise_step, generalise_step)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    positive = np.concatenate([as_float_array(train_loss), as_float_array(test_loss)])
    if np.any(positive > 0):
        ax_loss.set_yscale("log")
    ax_loss.set_title("loss (log scale)")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_title("accuracy")
    ax_acc.legend(loc="center right", fontsize=8)
    if verdicts:  # a long disagreement reason would run off both edges of the 11-inch figure
        verdicts = "\n".join(textwrap.fill(line, 150) for line in verdicts.split("\n"))
    n_lines = 1 + (verdicts.count("\n") + 1 if verdicts else 0)
    fig.suptitle(title + (f"\n{verdicts}" if verdicts else ""), fontsize=10 if verdicts else 12)
    fig.subplots_adjust(left=0.085, right=0.98, bottom=0.13, top=0.86 - 0.05 * n_lines, wspace=0.22)
    return fig


def _series_panel(ax, steps, series: Mapping[str, Sequence[float]], ylabel: str, log: bool = False) -> None:
    for name, values in series.items():
        ax.plot(
            as_float_array(steps),
            as_float_array(values),
            lw=1.4,
            label=name,
            marker="." if len(steps) < 40 else None,
        )
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
        mark_steps(ax, memorise_step, generalise_step)
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
    ax.plot(
        as_float_array(loss_steps),
        as_float_array(train_loss),
        color=TRAIN,
        lw=1.0,
        alpha=0.6,
        label="train loss",
    )
    ax.plot(
        as_float_array(loss_steps),
        as_float_array(test_loss),
        color=TEST,
        lw=1.0,
        alpha=0.6,
        label="test loss",
    )
    mk = "." if len(steps) < 40 else None
    ax.plot(
        as_float_array(steps),
        as_float_array(restricted_loss),
        color="#9467bd",
        lw=1.8,
        marker=mk,
        label="restricted loss (key frequencies only, all pairs)",
    )
    ax.plot(
        as_float_array(steps),
        as_float_array(excluded_loss),
        color="#8c564b",
        lw=1.8,
        marker=mk,
        label="excluded loss (key frequencies removed, train pairs)",
    )
    mark_steps(ax, memorise_step, generalise_step)
    values = np.concatenate(
        [as_float_array(v) for v in (train_loss, test_loss, restricted_loss, excluded_loss)]
    )
    if np.any(values > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.9)
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
        as_float_array(steps),
        as_float_array(share),
        color="#9467bd",
        lw=1.8,
        marker="." if len(steps) < 40 else None,
        label=f"share of |W_input| on bits 1..{k}",
    )
    ax.axhline(k / n_bits, color="gray", ls=":", lw=1, label=f"uniform ({k}/{n_bits})")
    mark_steps(ax, memorise_step, generalise_step)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("share of |W_input| mass")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.9)
    return fig

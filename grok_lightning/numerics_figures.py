"""Pure figures of spreads: a numerics ensemble's solved steps, a seed sweep's statistics.
Arrays in, a matplotlib Figure out (grok_lightning.figures.save_png writes it)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from grok_lightning.figures import TEST, TRAIN, new_figure

UNSOLVED = "#9a9a9a"


def ensemble_spread(rows: Sequence[dict], max_steps: int, article_step: Optional[int], title: str) -> Figure:
    """One row per member: a dot at its solved step, an open arrow at the budget when unsolved;
    the median of the solved ones and the article's printed step as vertical lines."""
    fig = new_figure(9, 0.8 + 0.32 * max(len(rows), 3))
    ax = fig.subplots()
    labels = []
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        labels.append(f"{r['precision']}, {r['cpu_threads']} thr, perturb {r['perturbation']}")
        if r["solved_step"] is not None:
            ax.plot(r["solved_step"], y, "o", color=TEST, ms=7)
        else:
            ax.plot(max_steps, y, ">", color=UNSOLVED, ms=8, mfc="none")
    solved = [r["solved_step"] for r in rows if r["solved_step"] is not None]
    if solved:
        med = float(np.median(solved))
        ax.axvline(med, color=TEST, ls="--", lw=1, label=f"median of solved: {med:,.0f}")
    if article_step:
        ax.axvline(article_step, color=TRAIN, lw=1.5, label=f"the article's run: {article_step:,}")
    ax.set_yticks(range(len(rows)), labels[::-1], fontsize=8)
    ax.set_xlim(0, max_steps * 1.04)
    ax.set_xlabel("step of test acc >= 0.99 with test loss < 1e-2 (arrow: not within the budget)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    ax.set_title(
        f"{title}: {len(solved)} of {len(rows)} members solved within {max_steps:,} steps", fontsize=11
    )
    fig.subplots_adjust(
        left=0.34, right=0.98, top=1 - 0.45 / fig.get_figheight(), bottom=0.75 / fig.get_figheight()
    )
    return fig


def seed_statistics(stats: dict, title: str) -> Figure:
    """Three panels: solved steps (histogram), number of key frequencies, neurons per key frequency."""
    fig = new_figure(12, 3.6)
    ax_steps, ax_keys, ax_neurons = fig.subplots(1, 3)
    steps = stats.get("solved_steps", [])
    budget = stats["max_steps"]
    ax_steps.hist(steps, bins=np.linspace(0, budget, 21), color=TEST, alpha=0.85)
    ax_steps.set_xlim(0, budget)
    ax_steps.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
    ax_steps.set_xlabel("step of test acc >= 0.99 and test loss < 1e-2")
    ax_steps.set_ylabel("models")
    head = f"{stats['solved']} of {stats['models']} solved within {budget:,}"
    nominal = stats.get("nominal_steps")
    if nominal and nominal < budget:  # the nominal budget inside an adaptive or to-the-cap sweep
        ax_steps.axvline(nominal, color="0.3", lw=1, ls="--")
        head += f"\n{stats['solved_by_nominal']} by the nominal {nominal:,} (dashed), {stats['stuck']} stuck"
    ax_steps.set_title(head, fontsize=10)
    for ax, key, xlabel in (
        (ax_keys, "n_key_frequencies", "key frequencies per model"),
        (ax_neurons, "neurons_per_frequency", "neurons on one key frequency"),
    ):
        counts = stats.get(key, {})
        xs = sorted(int(k) for k in counts)
        ax.bar(xs, [counts[str(x)] if str(x) in counts else counts[x] for x in xs], color=TRAIN, alpha=0.85)
        ax.set_xlabel(xlabel)
        ax.set_xticks(xs)
    ax_keys.set_title("all models", fontsize=10)
    ax_keys.set_ylabel("models")
    ax_neurons.set_title("solved models, each key frequency", fontsize=10)
    ax_neurons.set_ylabel("key frequencies")
    for ax in (ax_steps, ax_keys, ax_neurons):
        ax.grid(axis="y", alpha=0.3)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title, fontsize=12)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.16, top=0.78, wspace=0.25)
    return fig

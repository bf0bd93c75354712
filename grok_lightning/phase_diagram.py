"""The sweep's phase diagram: one cell per grid point, one small square per model (seed) coloured
by its outcome class, so a cell shows the mix of outcomes over its seeds. Two grid keys are the
axes; any further keys make one panel per combination. Pure: table rows in, matplotlib Figure out.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.textpath import TextToPath  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from grok_lightning.outcome import OUTCOMES  # noqa: E402

# fail grey, memorise orange, generalise blue, grok green: apart under common colour-vision deficiencies
OUTCOME_COLOURS = {"fail": "#9e9e9e", "memorise": "#e8772e", "generalise": "#3a78c2", "grok": "#2fa36b"}
DIVERGED_COLOUR = "#222222"
_SQUARE, _SEP, _CELL_GAP = 6, 1, 5  # pixels: a model's square, the line between squares, between cells
_TITLE_SIZE = 10  # points: a panel's title


def short_name(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def flags_label(keys: Sequence[str], values: Sequence[Any]) -> str:
    """A combination of grid values in full, one key=value per line: a panel title or a bar's label
    stays as narrow as its longest flag, so neighbours neither clip nor overlap it."""
    return "\n".join(f"{short_name(k)}={_fmt(v)}" for k, v in zip(keys, values, strict=True))


def text_width_in(text: str, fontsize: float) -> float:
    """The widest line of `text` in inches, measured in matplotlib's default font."""
    font, measure = FontProperties(size=fontsize), TextToPath().get_text_width_height_descent
    return max(measure(line, font, ismath=False)[0] for line in text.split("\n")) / 72  # points -> in


def _sorted_unique(values) -> list:
    unique = list(dict.fromkeys(values))
    try:
        return sorted(unique)
    except TypeError:  # mixed types: keep first-seen order
        return unique


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array(matplotlib.colors.to_rgb(hex_colour))


def phase_diagram(
    records: Sequence[Mapping[str, Any]],
    x: Optional[str] = None,
    y: Optional[str] = None,
    facets: Sequence[str] = (),
    *,
    title: str = "",
    outcome_key: str = "outcome",
    diverged_key: str = "diverged",
) -> Figure:
    """records: one mapping per model with the x / y / facet keys and its outcome (and optionally
    diverged=True, drawn dark whatever the outcome). x or y None: a single column / row."""
    xs = _sorted_unique(r[x] for r in records) if x else [None]
    ys = _sorted_unique(r[y] for r in records) if y else [None]
    panels = _sorted_unique(tuple(r[k] for k in facets) for r in records) if facets else [()]
    order = {name: i for i, name in enumerate(OUTCOMES)}

    cells: dict[tuple, list] = {}
    for r in records:
        key = (tuple(r[k] for k in facets), r[x] if x else None, r[y] if y else None)
        state = "diverged" if r.get(diverged_key) in (True, "True", "true", 1) else r[outcome_key]
        cells.setdefault(key, []).append(state)
    per_cell = max((len(v) for v in cells.values()), default=1)
    cols = math.ceil(math.sqrt(per_cell))  # squares per cell row; cells stay near square
    rows = math.ceil(per_cell / cols)
    pitch = _SQUARE + _SEP
    cell_w, cell_h = cols * pitch + _CELL_GAP, rows * pitch + _CELL_GAP
    colours = {**{k: _rgb(v) for k, v in OUTCOME_COLOURS.items()}, "diverged": _rgb(DIVERGED_COLOUR)}

    n_panels = len(panels)
    ncols = min(n_panels, 5)
    nrows = math.ceil(n_panels / ncols)
    inch_per_px = 0.42 / max(cell_w, cell_h) * max(1.0, min(2.0, math.sqrt(per_cell) / 3))
    panel_w = max(1.6, len(xs) * cell_w * inch_per_px)
    panel_h = max(1.2, len(ys) * cell_h * inch_per_px)
    if len(xs) * len(ys) * n_panels == 1:  # one cell (a seeds-only sweep): draw it large
        panel_w = panel_h = 3.5
    titles = [flags_label(facets, panel) for panel in panels] if facets else []
    if titles:  # a title as wide as its panel, give or take 0.15 in of the 0.5 in between panels
        panel_w = max(panel_w, max(text_width_in(t, _TITLE_SIZE) for t in titles) - 0.3)
        panel_h += 0.17 * (len(facets) - 1)  # a line per flag above the cells
    fig, axes = plt.subplots(
        nrows,
        ncols,
        # at least wide enough for the legend and title
        figsize=(max(6.5, ncols * (panel_w + 0.5) + 1.0), nrows * (panel_h + 0.9) + 1.1),
        squeeze=False,
        sharey=True,
        layout="constrained",  # room for the titles, the legend below and the suptitle, measured
    )
    # the default padding lets a row's titles touch the x labels of the row above (aspect="equal")
    fig.get_layout_engine().set(h_pad=0.1)
    for i, panel in enumerate(panels):
        ax = axes[i // ncols][i % ncols]
        image = np.ones((len(ys) * cell_h, len(xs) * cell_w, 3))
        for yi, yv in enumerate(ys):
            for xi, xv in enumerate(xs):
                states = sorted(cells.get((panel, xv, yv), []), key=lambda s: order.get(s, len(order)))
                # top row of the image is the largest y: row 0 of the array is drawn at the top
                top = (len(ys) - 1 - yi) * cell_h + _CELL_GAP // 2
                left = xi * cell_w + _CELL_GAP // 2
                for j, state in enumerate(states):
                    r0, c0 = top + (j // cols) * pitch, left + (j % cols) * pitch
                    image[r0 : r0 + _SQUARE, c0 : c0 + _SQUARE] = colours[state]
        ax.imshow(image, interpolation="nearest", aspect="equal")
        ax.set_xticks([(xi + 0.5) * cell_w - 0.5 for xi in range(len(xs))])
        ax.set_xticklabels([_fmt(v) for v in xs] if x else [""])
        ax.set_yticks([(len(ys) - 1 - yi + 0.5) * cell_h - 0.5 for yi in range(len(ys))])
        ax.set_yticklabels([_fmt(v) for v in ys] if y else [""])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if x:
            ax.set_xlabel(short_name(x))
        if y and i % ncols == 0:
            ax.set_ylabel(short_name(y))
        if titles:
            ax.set_title(titles[i], fontsize=_TITLE_SIZE)
    for j in range(n_panels, nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")

    counts = Counter(s for states in cells.values() for s in states)
    handles = [Patch(color=OUTCOME_COLOURS[o], label=f"{o} ({counts.get(o, 0)})") for o in OUTCOMES]
    if counts.get("diverged"):
        handles.append(Patch(color=DIVERGED_COLOUR, label=f"diverged ({counts['diverged']})"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)
    n_seeds = f"{per_cell} seeds per cell" if per_cell > 1 else "1 model per cell"
    fig.suptitle(f"{title}: outcome of {len(records)} models ({n_seeds})" if title else n_seeds, fontsize=11)
    return fig


def outcome_bars(
    records: Sequence[Mapping[str, Any]], by: Sequence[str], *, title: str = "", keys=("outcome", "verdict")
) -> Figure:
    """Stacked bars, one per combination of the `by` keys (e.g. the architecture flags): how many
    models fell in each class, one panel per verdict (the article's phase rule, the accuracy
    verdict), as the article's "which model constraints work best" bars."""
    groups = _sorted_unique(tuple(r[k] for k in by) for r in records)
    labels = [flags_label(by, g) for g in groups]
    panels = [k for k in keys if any(r.get(k) not in (None, "") for r in records)]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(5.0, 1.9 * len(groups) + 0.8) * len(panels), 4.4), squeeze=False
    )
    names = {"outcome": "article's phase rule (losses)", "verdict": "accuracy verdict"}
    for ax, key in zip(axes[0], panels, strict=True):
        bottom = np.zeros(len(groups))
        for o in OUTCOMES:
            counts = np.array(
                [sum(1 for r in records if tuple(r[k] for k in by) == g and r.get(key) == o) for g in groups]
            )
            ax.bar(range(len(groups)), counts, bottom=bottom, color=OUTCOME_COLOURS[o], label=o, width=0.7)
            bottom += counts
        ax.set_xticks(range(len(groups)), labels, fontsize=8)
        ax.set_ylabel("models")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(names.get(key, key), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.suptitle(f"{title}: {len(records)} models" if title else f"{len(records)} models", fontsize=11)
    fig.tight_layout()
    return fig

"""The figures' common ground: colours, a figure on its own Agg canvas, the atomic PNG writer, and
the small drawing helpers every kind of figure shares (step titles, milestone lines, diverging maps)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from PIL import Image

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
    """Write a PNG atomically (temporary name, then rename): a logger or reader never sees half a file;
    a 256-colour palette PNG (a run's figures cost its disk a third of full colour)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        buf = io.BytesIO()
        fig.savefig(buf, dpi=DPI, format="png")
        # 256 colours, as many as a colour map has: a third of the bytes, no visible change
        with Image.open(buf) as image:
            rgb = image.convert("RGB")
        palette = rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        palette.save(tmp, format="PNG", optimize=True)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would have
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def as_float_array(x) -> np.ndarray:
    """A tensor (any device, any dtype) or a sequence -> float64 numpy, so every figure draws alike."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def step_title(title: str, step: Optional[int]) -> str:
    return f"{title} — step {step:,}" if step is not None else title


def mark_steps(ax, memorise_step: Optional[int], generalise_step: Optional[int]) -> None:
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


def diverging_heatmap(ax, fig, M: np.ndarray, *, label: str = "weight"):
    vmax = float(np.nanmax(np.abs(M))) if M.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(
        M, cmap=DIVERGING, norm=TwoSlopeNorm(0.0, -vmax, vmax), aspect="auto", interpolation="nearest"
    )
    bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label(label)
    return im

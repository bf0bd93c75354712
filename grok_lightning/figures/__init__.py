"""Figures: arrays in, a matplotlib Figure out. No Lightning, no W&B, no global pyplot state.

Every figure is built on its own Agg canvas (`matplotlib.figure.Figure` + `FigureCanvasAgg`), so
drawing from a training process never opens a window or touches a user's backend choice. Layouts
are set by hand rather than by a layout engine: that engine costs as much as the drawing itself.

Split by what the figures show: `canvas` (colours, new_figure, save_png, shared helpers), `curves`
(series over training steps), `heatmaps` (weights and their spectrum), `fourier_views` (neurons at
their frequency, logit waves). Callers import from here: `from grok_lightning import figures`.
"""

from grok_lightning.figures.canvas import (
    DIVERGING,
    DPI,
    GENERALISE,
    MEMORISE,
    TEST,
    TRAIN,
    new_figure,
    save_png,
)
from grok_lightning.figures.curves import bit_mass_curve, progress_curves, sparsity_curves, training_curves
from grok_lightning.figures.fourier_views import fourier_stars, logit_waves, neuron_circles
from grok_lightning.figures.heatmaps import dft_heatmaps, parity_heatmaps, weight_heatmaps

__all__ = [
    "DIVERGING",
    "DPI",
    "GENERALISE",
    "MEMORISE",
    "TEST",
    "TRAIN",
    "bit_mass_curve",
    "dft_heatmaps",
    "fourier_stars",
    "logit_waves",
    "neuron_circles",
    "new_figure",
    "parity_heatmaps",
    "progress_curves",
    "save_png",
    "sparsity_curves",
    "training_curves",
    "weight_heatmaps",
]

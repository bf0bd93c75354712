"""The explorer: one self-contained interactive page per run and per sweep (explorer.html).

    python -m grok_lightning.explorer <run or sweep dir>      (make explore RUN=<dir>)

A run page replays training with one step slider driving every panel (weights, their Fourier
spectrum, the neurons' stars and logit waves, the sparsity numbers, the curves' marker), from the
trajectory the Trajectory callback writes during training. A sweep page is the phase diagram with
live loss / ratio thresholds and any cell's curves. Hand-written HTML + canvas, the data inlined
as base64 arrays: it opens from file:// offline, with no server and no network fetch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, Optional

from grok_lightning.explorer.names import PAGE_NAME, ExplorerError


# The page builders import torch and Lightning: loaded on first use, so that a wrong directory on
# the command line is answered at once.
def write_run_page(run_dir) -> Path:
    """(Re)build <run_dir>/explorer.html; see grok_lightning.explorer.run_page."""
    from .run_page import write_run_page as write

    return write(run_dir)


def write_sweep_page(sweep_dir) -> Path:
    """(Re)build <sweep_dir>/explorer.html; see grok_lightning.explorer.sweep_page."""
    from .sweep_page import write_sweep_page as write

    return write(sweep_dir)


def is_sweep_dir(path) -> bool:
    return (Path(path) / "results.csv").is_file()


__all__ = [
    "PAGE_NAME",
    "ExplorerError",
    "write_page_for",
    "write_run_page",
    "write_sweep_page",
    "log_page_to_wandb",
]


def write_page_for(directory) -> Path:
    """A run directory (config.yaml) gets a run page, a sweep directory (results.csv) a sweep page."""
    from grok_lightning import runs

    directory = Path(directory)
    if not directory.is_dir():
        raise ExplorerError(f"{directory}: no such directory")
    if runs.is_run_dir(directory):
        return write_run_page(directory)
    if is_sweep_dir(directory):
        return write_sweep_page(directory)
    raise ExplorerError(
        f"{directory}: neither a run directory (config.yaml) nor a sweep directory (results.csv)"
    )


def log_page_to_wandb(loggers: Optional[Iterable], path, key: str = "explorer") -> bool:
    """Put the page into each W&B run among `loggers` (Lightning WandbLogger or wandb runs) as an
    HTML panel, online or offline. Call it before the W&B run is finished. Never raises: W&B must
    not fail a run; returns whether any run took the page."""
    path = Path(path)
    runs_ = [r for r in (_wandb_run(logger) for logger in loggers or ()) if r is not None]
    if not runs_ or not path.is_file():
        return False
    try:
        import wandb

        html = path.read_text(encoding="utf-8")
        for run in runs_:
            run.log({key: wandb.Html(html, inject=False)})
    except Exception as exc:  # any W&B failure is only worth a warning
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        warnings.warn(f"explorer page not logged to W&B: {reason}", stacklevel=2)
        return False
    return True


def _wandb_run(logger):
    if type(logger).__name__ == "WandbLogger":
        return logger.experiment
    if type(logger).__module__.startswith("wandb") and hasattr(logger, "log"):
        return logger
    return None

"""Progress: one line per batch, updated at the logging cadence (not per step), rank 0 only."""

from __future__ import annotations

from typing import Optional

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape

from grok_lightning import config as C


class _Progress(Callback):
    def __init__(self, update, every: int):
        super().__init__()
        self.update, self.every, self.shown = update, every, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step // self.every > self.shown // self.every or step >= trainer.max_steps:
            self.shown = step
            self.update(step)

    def on_train_end(self, trainer, pl_module):
        self.update(None)

    def on_exception(self, trainer, pl_module, exception):
        self.update(None)  # a live line left running would garble the traceback


def progress_callback(cfg: DictConfig, batch_id: str, n_models: int, console: Optional[Console]):
    """A rich progress line `batch <id>: step s / max_steps`; silent without a console (ranks > 0)
    or where the console is not a terminal (the per-batch line says the same at the end)."""
    if console is None or not console.is_terminal:
        return _Progress(lambda step: None, C.log_every(cfg))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(f"batch {escape(batch_id)} ({n_models} models)"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("steps", total=cfg.train.max_steps)

    def update(step):
        if step is None:
            bar.stop()
            return
        bar.start()
        bar.update(task, completed=step)

    return _Progress(update, C.log_every(cfg))

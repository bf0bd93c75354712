"""What every analysis callback shares: when to act, where results go. No analysis math here.

A callback measures scalars at `scalars_every` steps, draws image frames at `frames_every` steps and draws its
end-of-run figures in `on_train_end`. The same three methods (`record`, `draw_frames`, `finish`)
are what `grok_lightning.report` calls on a GrokModule rebuilt from checkpoints, so a finished run's
figures are re-rendered by the very code that drew them during training.

Steps: the GrokModule runs `steps_per_call` optimiser updates per training_step, so
`trainer.global_step` jumps; a callback acts when the step count crosses a multiple of its cadence
(and after the first batch, to show the start). A measurement taken after G updates is labelled
step G - 1, the module's own convention for its logged metrics ("step s" = after update s).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure
from omegaconf import DictConfig

from grok_lightning import figures, outcome

SCALAR_DIVISOR = 50  # default scalar cadence: max_steps // 50 (1,000 on the main preset)
IMAGE_DIVISOR = 10  # default image cadence: max_steps // 10 (5,000: ten frames for the W&B slider)
# A frame costs 0.3-0.6 s of matplotlib on a 2-core CPU. Floors on the defaults: a short run
# drawing ten frames would spend more time drawing than training.
SCALAR_FLOOR, IMAGE_FLOOR = 100, 1000


def resolve_cadence(value: int, default: int, steps_per_call: int) -> int:
    """0 -> default, negative -> 0 (never), else value; never finer than one training_step."""
    if value < 0:
        return 0
    value = value or default
    return max(int(value), steps_per_call) if value else 0


def crossed(before: int, after: int, every: int) -> bool:
    """Whether the step count passed a multiple of `every` going from before to after."""
    return every > 0 and after // every > before // every


def collapsed_weights(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(W_input_a, W_input_b, W_output) of every model; a model without separate input sides
    exposes just W_input and W_output."""
    if hasattr(model, "collapsed"):
        return model.collapsed()
    return model.W_input, model.W_input, model.W_output


class AnalysisCallback(Callback):
    """Subclasses set `key` (their name under `callbacks:` in the config) and `prefix` (where their
    scalars are logged), and override any of `measure`, `frames`, `finals`."""

    key = "analysis"
    prefix = "analysis"
    default_scalars_every = SCALAR_DIVISOR  # divisor of max_steps; 0: none by default
    default_frames_every = 0

    def __init__(
        self, cfg: DictConfig, task, run_dir: Optional[Path], scalars_every: int = 0, frames_every: int = 0
    ):
        self.cfg, self.task = cfg, task
        self.figure_dir = Path(run_dir) / "figures" if run_dir is not None else None
        spc, max_steps = cfg.train.steps_per_call, cfg.train.max_steps
        default = (
            max(max_steps // self.default_scalars_every, SCALAR_FLOOR) if self.default_scalars_every else 0
        )
        default_frames = (
            max(max_steps // self.default_frames_every, IMAGE_FLOOR) if self.default_frames_every else 0
        )
        self.scalars_every = resolve_cadence(scalars_every, default, spc)
        self.frames_every = resolve_cadence(frames_every, default_frames, spc)
        self.steps: list[int] = []  # steps of the recorded scalars, kept for the end-of-run figures
        self.series: dict[str, list[float]] = {}
        self.seconds = 0.0  # time spent in this callback, reported in summary.json
        self.written: list[str] = []
        self._summary_part: dict = {}  # set by on_train_end; see summary_part
        self._before = 0

    # ------------------------------------------------------------------------------ to override
    def measure(self, pl_module) -> dict[str, float]:
        """Model 0's scalars now (names without the prefix)."""
        return {}

    def frames(self, pl_module, step: int) -> dict[str, Figure]:
        """Images drawn during training: name -> Figure, saved as figures/<name>/step_<step>.png."""
        return {}

    def finals(self, pl_module, step: int) -> dict[str, Figure]:
        """End-of-run figures: name -> Figure, saved as figures/<name>.png."""
        return {}

    def summary(self, pl_module) -> dict:
        """What this callback adds to summary.json at the end of the run."""
        return {}

    def summary_part(self) -> dict:
        """What the end of this run left for summary.json: summary() and this callback's seconds
        (`callback_seconds`). Empty when the run did not end here (interrupted, diverged)."""
        return dict(self._summary_part)

    # ------------------------------------------------------------------------------ actions
    def record(self, pl_module, step: int, trainer=None) -> dict[str, float]:
        if self.steps and self.steps[-1] == step:
            return {}
        with torch.no_grad():
            values = {name: float(v) for name, v in self.measure(pl_module).items()}
        if not values:
            return values
        self.steps.append(step)
        for name, v in values.items():
            self.series.setdefault(name, [float("nan")] * (len(self.steps) - 1)).append(v)
        for series in self.series.values():  # keep every series aligned with steps
            if len(series) < len(self.steps):
                series.append(float("nan"))
        if trainer is not None:
            metrics = {f"{self.prefix}/{name}": v for name, v in values.items()}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
        return values

    def draw_frames(self, pl_module, step: int, trainer=None) -> None:
        with torch.no_grad():
            figs = self.frames(pl_module, step)
        self._emit({name: (fig, f"{name}/step_{step:07d}.png") for name, fig in figs.items()}, step, trainer)

    def finish(self, pl_module, step: int, trainer=None) -> None:
        with torch.no_grad():
            figs = self.finals(pl_module, step)
        self._emit({name: (fig, f"{name}.png") for name, fig in figs.items()}, step, trainer)

    def _emit(self, figs: dict, step: int, trainer) -> None:
        """Write each figure under figures/ and send it to every logger that takes images."""
        for name, (fig, relpath) in figs.items():
            if self.figure_dir is None:
                continue
            path = figures.save_png(fig, self.figure_dir / relpath)
            self.written.append(str(path))
            if trainer is not None:
                log_image(trainer, f"figures/{name}", path, step)

    # ------------------------------------------------------------------------------ shared helpers
    def marks(self, pl_module) -> dict:
        """Model 0's memorise / generalise steps and outcome class from the logged history
        (grok_lightning.outcome, with the run's thresholds)."""
        steps, _ = pl_module.history_tensor()
        if not steps:
            return {"memorise_step": None, "generalise_step": None, "verdict": None, "outcome": None}
        return pl_module.verdicts(0, **outcome.rule_settings(self.cfg.outcome))

    def step_marks(self, pl_module) -> dict:
        m = self.marks(pl_module)
        return {"memorise_step": m["memorise_step"], "generalise_step": m["generalise_step"]}

    # ------------------------------------------------------------------------------ Lightning hooks
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._before = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero:
            return
        before, after = self._before, trainer.global_step
        first = before == 0 and after > 0
        start = time.perf_counter()
        if self.scalars_every and (first or crossed(before, after, self.scalars_every)):
            self.record(pl_module, after - 1, trainer)
        if self.frames_every and (first or crossed(before, after, self.frames_every)):
            self.draw_frames(pl_module, after - 1, trainer)
        self.seconds += time.perf_counter() - start

    def on_train_end(self, trainer, pl_module) -> None:
        # An interrupted run (Ctrl-C, SIGTERM) ends later, on resume: measuring now would add a
        # row that an uninterrupted run does not have.
        if (
            not trainer.is_global_zero
            or trainer.global_step == 0
            or getattr(pl_module, "stop_requested", False)
        ):
            return
        start = time.perf_counter()
        step = trainer.global_step - 1
        if self.scalars_every:
            self.record(pl_module, step, trainer)
        self.finish(pl_module, step, trainer)
        self.seconds += time.perf_counter() - start
        with torch.no_grad():
            part = self.summary(pl_module)
        self._summary_part = {**part, "callback_seconds": {self.key: round(self.seconds, 3)}}

    # The scalar series survive a resume through the checkpoint.
    def state_dict(self) -> dict:
        return {"steps": list(self.steps), "series": {k: list(v) for k, v in self.series.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.steps = list(state_dict.get("steps", []))
        self.series = {k: list(v) for k, v in state_dict.get("series", {}).items()}


def log_image(trainer, key: str, path: Path, step: int) -> None:
    """Images go to the loggers that take them (W&B); CSV has no images."""
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:  # pragma: no cover - lightning always ships it
        return
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)], step=step)

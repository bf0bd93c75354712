"""Trajectory: model 0's collapsed weights (W_input, W_output) at a fine cadence, written to
<run_dir>/trajectory.npz for the explorer page (grok_lightning.explorer), which draws every frame
from it instead of rebuilding frames from checkpoints.

trajectory.npz:
    steps       [T] int64              step labels (a frame taken after G updates is step G - 1)
    W_input     [T, rows, n] float32   collapsed input side (rows: tokens, or bits + bias row)
    W_output    [T, n, cols] float32
    W_input_b   [T, rows, n] float32   only when the two input sides are untied
    meta        0-d str                JSON: cadence, task analyses, activation, fixed-embedding
                                       frequencies, parity k; what the page needs to know

The file is rewritten atomically whenever a checkpoint is saved and when training ends (or fails),
so a killed run loses at most the frames its checkpoint lost too. A resumed run reads the file
back and keeps the frames before its checkpoint's last step (the resume takes that one again where
the cadence does): one continuous series, the same frames as an uninterrupted run.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from omegaconf import OmegaConf

from grok_lightning import runs

from ._base import AnalysisCallback, collapsed_weights, crossed, resolve_cadence

FRAMES = 100  # default cadence max_steps // FRAMES: the slider's 100 positions; a run stays <= 5 MB
FILENAME = "trajectory.npz"
ARRAYS = ("W_input", "W_output", "W_input_b")


def default_cadence(max_steps: int, steps_per_call: int) -> int:
    return max(max_steps // FRAMES, steps_per_call)


def write_npz(path: Path, arrays: dict) -> None:
    """np.savez written atomically (temporary name, then rename): never half a file."""
    runs.atomic_write_npz(path, **arrays)


def read_trajectory(path: Path) -> Optional[dict]:
    """The arrays of a trajectory file with meta decoded, or None when absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {name: z[name] for name in z.files}
    except (OSError, ValueError, EOFError):
        return None
    if "steps" not in out or "W_input" not in out or "W_output" not in out:
        return None
    out["meta"] = json.loads(str(out["meta"])) if "meta" in out else {}
    return out


class Trajectory(AnalysisCallback):
    """Every `frames_every` steps (default max(max_steps // 100, steps_per_call)), after the first
    training_step and at the last step; nothing during `grok_lightning.report` (it replays
    checkpoints, which are far coarser than the trajectory it would replace)."""

    key, prefix = "trajectory", "trajectory"
    default_scalars_every = 0

    def __init__(self, cfg, task, run_dir, scalars_every: int = 0, frames_every: int = 0):
        # its frames are arrays, not images: the base class's image cadence stays off
        super().__init__(cfg, task, run_dir, scalars_every=-1, frames_every=-1)
        spc = cfg.train.steps_per_call
        self.every = resolve_cadence(frames_every, default_cadence(cfg.train.max_steps, spc), spc)
        self.path = Path(run_dir) / FILENAME if run_dir is not None else None
        self.frames: dict[str, list[np.ndarray]] = {}
        self._checkpoint_steps: Optional[list[int]] = None  # frame steps a loaded checkpoint had

    # ------------------------------------------------------------------------------ frames
    def meta(self, pl_module) -> dict:
        model = pl_module.model
        fixed = getattr(model, "fixed_embed", None) is not None  # a constant circle embedding
        freqs = OmegaConf.select(self.cfg, "model.freqs", default=[]) if fixed else None
        return {
            "every": self.every,
            "analyses": sorted(self.task.analyses_for(self.cfg)),
            "activation": getattr(getattr(model, "cfg", None), "activation", None),
            "fixed_embed_freqs": list(freqs) if freqs is not None else None,
            "k": OmegaConf.select(self.cfg, "data.k", default=None),
        }

    def capture(self, pl_module, step: int) -> None:
        if self.steps and self.steps[-1] >= step:
            return
        with torch.no_grad():
            W_a, W_b, W_out = collapsed_weights(pl_module.model)
            arrays = {"W_input": W_a[0], "W_output": W_out[0]}
            if W_b is not W_a:
                arrays["W_input_b"] = W_b[0]
            host = {k: v.detach().to("cpu", torch.float32).numpy().copy() for k, v in arrays.items()}
        self.steps.append(step)
        for name, value in host.items():
            self.frames.setdefault(name, []).append(value)

    def save(self, pl_module) -> None:
        if self.path is None or not self.steps:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: np.stack(values) for name, values in self.frames.items()}
        arrays["steps"] = np.asarray(self.steps, dtype=np.int64)
        arrays["meta"] = np.asarray(json.dumps(self.meta(pl_module)))
        write_npz(self.path, arrays)

    def restore(self, global_step: int) -> None:
        """A resumed run: keep the file's frames taken before the checkpoint's last step
        (global_step - 1). The resume takes that one again if the cadence does
        (grok_lightning.rundir.AsUninterrupted): a finished run took it as its end, an
        uninterrupted longer run only on the cadence."""
        last = global_step - 1
        self.steps, self.frames = [], {}
        saved = read_trajectory(self.path) if self.path is not None else None
        if saved is not None:
            keep = saved["steps"] < last
            self.steps = saved["steps"][keep].tolist()
            self.frames = {n: list(saved[n][keep]) for n in ARRAYS if n in saved}
        expected = self._checkpoint_steps
        if expected is not None and self.steps != [s for s in expected if s < last]:
            warnings.warn(
                f"{self.path}: its frames do not match the checkpoint's ({len(self.steps)} vs "
                f"{len(expected)} before step {last}); the explorer's trajectory has a gap",
                stacklevel=2,
            )

    # ------------------------------------------------------------------------------ report: nothing
    def record(self, pl_module, step: int, trainer=None) -> dict[str, float]:
        return {}

    def finish(self, pl_module, step: int, trainer=None) -> None:
        return None

    # ------------------------------------------------------------------------------ Lightning hooks
    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_step > 0:
            self.restore(trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero:
            return
        before, after = self._before, trainer.global_step
        if after > 0 and (before == 0 or crossed(before, after, self.every)):
            start = time.perf_counter()
            self.capture(pl_module, after - 1)
            self.seconds += time.perf_counter() - start

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if trainer.is_global_zero:
            start = time.perf_counter()
            self.save(pl_module)
            self.seconds += time.perf_counter() - start

    def on_train_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or trainer.global_step == 0:
            return
        start = time.perf_counter()
        # An interrupted run takes its last frame on resume, as an uninterrupted run would.
        if not getattr(pl_module, "stop_requested", False):
            self.capture(pl_module, trainer.global_step - 1)
        self.save(pl_module)
        self.seconds += time.perf_counter() - start
        self._summary_part = {
            "trajectory_frames": len(self.steps),
            "callback_seconds": {self.key: round(self.seconds, 3)},
        }

    def on_exception(self, trainer, pl_module, exception) -> None:
        # A diverged run keeps the frames it took; a resume truncates them to its checkpoint.
        if trainer.is_global_zero:
            self.save(pl_module)

    # The checkpoint carries only the frame steps (the weights stay in trajectory.npz): enough to
    # check on resume that the file holds every frame taken before the checkpoint.
    def state_dict(self) -> dict:
        return {"steps": list(self.steps)}

    def load_state_dict(self, state_dict: dict) -> None:
        self._checkpoint_steps = list(state_dict.get("steps", []))

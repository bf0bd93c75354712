"""A run record: one object for a finished (or interrupted, or old) run's config, metric history,
summary, trajectory and checkpoints. `train()` returns one; `grok_lightning.load_run(run_dir)`
reads one back from a run directory:

    run = load_run("runs/modadd/<id>")
    run.history["test/acc"], run.summary["verdict_text"], run.model_at(1000)

The record is also path-like: os.fspath(run) and run / "metrics.csv" name the run directory."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from omegaconf import DictConfig

from grok_lightning import run_files
from grok_lightning.run_files import RunError

__all__ = ["History", "RunError", "RunRecord", "load_run"]


@dataclass(frozen=True)
class History:
    """Logged metrics: steps [n], names, values [n, len(names)] (NaN where a row has none)."""

    steps: np.ndarray
    names: tuple[str, ...]
    values: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(f"no metric {name!r}; the history has {', '.join(self.names)}")
        return self.values[:, self.names.index(name)]

    def __len__(self) -> int:
        return len(self.steps)

    def frame(self) -> np.ndarray:
        """The history as one table without pandas: a numpy structured array with a `step` field
        and one field per metric (`f["test/acc"]`, `f[f["step"] >= 1000]`);
        `pandas.DataFrame(f).set_index("step")` where pandas is installed."""
        table = np.empty(len(self.steps), dtype=[("step", np.int64)] + [(n, np.float64) for n in self.names])
        table["step"] = self.steps
        for i, name in enumerate(self.names):
            table[name] = self.values[:, i]
        return table


class RunRecord:
    """One run: `config`, `history` (the module's metrics), `analysis` (the callbacks' scalars),
    `summary`, `trajectory` (trajectory.npz, or None), `checkpoints` ({step: path}) and
    `model_at(step)`. What comes from files is read on first use."""

    def __init__(
        self,
        run_dir,
        config: DictConfig,
        *,
        history: Optional[History] = None,
        summary: Optional[dict] = None,
    ):
        self.path = Path(run_dir)
        self.config = config
        self._history, self._summary = history, summary
        self._analysis: Optional[History] = None
        self._trajectory, self._trajectory_read = None, False
        self._checkpoints: Optional[dict[int, Path]] = None

    # Path-like: code that took the run directory from train() keeps working.
    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __truediv__(self, other) -> Path:
        return self.path / other

    def __repr__(self) -> str:
        return f"RunRecord({str(self.path)!r}, task={self.config.task}, preset={self.config.preset})"

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------------------------ metrics
    @property
    def history(self) -> History:
        """The module's metrics (grok_lightning.module.METRICS) at every logged step."""
        if self._history is None:
            self._read_metrics()
        return self._history

    @property
    def analysis(self) -> History:
        """The analysis callbacks' scalars (fourier/*, gap/*, progress/*, ...) at their steps."""
        if self._analysis is None:
            self._read_metrics()
        return self._analysis

    def _read_metrics(self) -> None:
        from grok_lightning.module import METRICS

        path = self.path / "metrics.csv"
        names, rows = run_files.read_metrics_table(path)
        own = [r for r in rows if r.get("train/loss")]
        others = [n for n in names if n != "step" and n not in METRICS]
        extra = [r for r in rows if any(r.get(n) for n in others)]
        if self._history is None:
            self._history = History(*_columns(own, METRICS, path))
        self._analysis = History(*_columns(extra, tuple(others), path))

    @property
    def summary(self) -> dict:
        """summary.json; for a run without one (killed, or older), the verdicts of its history
        (grok_lightning.outcome) with status None."""
        if self._summary is None:
            self._summary = _read_json(self.path / "summary.json")
            if self._summary is None:
                self._summary = self._summary_from_history()
            else:
                self._summary = _renamed_final(self._summary)
        return self._summary

    def _summary_from_history(self) -> dict:
        from grok_lightning import outcome

        h = self.history
        verdicts = outcome.summarise(
            h.steps.tolist(),
            h["train/loss"].tolist(),
            h["test/loss"].tolist(),
            h["train/acc"].tolist(),
            h["test/acc"].tolist(),
            **outcome.rule_settings(self.config.outcome),
        )
        final = dict(zip(h.names, h.values[-1].tolist())) if len(h) else {}
        head = {"task": self.config.task, "preset": self.config.preset, "status": None}
        return {**head, "final": final, "final_step": int(h.steps[-1]) if len(h) else None, **verdicts}

    # ------------------------------------------------------------------------------ files
    @property
    def trajectory(self) -> Optional[dict]:
        """trajectory.npz (the explorer's weight frames) as arrays and meta, or None."""
        if not self._trajectory_read:
            from grok_lightning.callbacks.trajectory import FILENAME, read_trajectory

            self._trajectory, self._trajectory_read = read_trajectory(self.path / FILENAME), True
        return self._trajectory

    @property
    def checkpoints(self) -> dict[int, Path]:
        """{step (updates done, as in step=<N>.ckpt): path}, ascending; last.ckpt under its own
        step when no step file has it."""
        if self._checkpoints is None:
            found = dict(run_files.checkpoints_by_step(self.path))
            last = self.last_checkpoint
            if last is not None:
                step = int(run_files.read_checkpoint(last).get("global_step", -1))
                if step >= 0 and step not in found:
                    found[step] = last
            self._checkpoints = dict(sorted(found.items()))
        return self._checkpoints

    @property
    def last_checkpoint(self) -> Optional[Path]:
        from grok_lightning import runs

        return runs.last_checkpoint(self.path)

    def model_at(self, step: Optional[int] = None):
        """The GrokModule at `step`, `.model` the network: a saved checkpoint's (step=<N>.ckpt, N
        updates done; the newest when None), weights, history and optimiser state as saved; else
        the trajectory frame the explorer shows as that step (after update `step`), as the model
        with the frame's weights (grok_lightning.checkpoints.module_from_frame). Any other step:
        RunError naming the nearest steps that have weights."""
        from grok_lightning.checkpoints import module_from_frame
        from grok_lightning.module import module_from_checkpoint

        saved = self.checkpoints
        frames = self.trajectory["steps"].tolist() if self.trajectory is not None else []
        if step is None and (saved or frames):
            step = max(saved) if saved else frames[-1]
        if step in saved:
            return module_from_checkpoint(saved[step])
        if step in frames:
            return module_from_frame(self.config, self.trajectory, frames.index(step))
        raise RunError(f"{self.path}: {missing_step(step, list(saved), frames)}")


def missing_step(step: Optional[int], saved: list[int], frames: list[int]) -> str:
    """Why model_at(step) has no weights, and the nearest steps that have (one line)."""
    if not saved and not frames:
        return "no checkpoints saved and no trajectory frames"
    have = sorted(set(saved) | set(frames))
    below, above = [s for s in have if s < step], [s for s in have if s > step]
    nearest = " and ".join(str(s) for s in (below[-1:] + above[:1]))
    listed = ", ".join(map(str, saved)) if saved else "none"
    return (
        f"no checkpoint at step {step}; saved steps: {listed}; no trajectory frame either "
        f"({len(frames)} frames, {frames[0] if frames else '-'} to {frames[-1] if frames else '-'}); "
        f"nearest steps with weights: {nearest}"
    )


def load_run(run_dir) -> RunRecord:
    """The record of a run directory (runs/<task>/<id>); the config is read and checked now, the
    rest on first use. Raises RunError (one line) for a directory that is not a readable run."""
    run_dir = Path(run_dir)
    return RunRecord(run_dir, run_files.read_config(run_dir))


def _columns(rows: list[dict], names: tuple, path: Path) -> tuple:
    steps, values = run_files.numbers(rows, list(names), path)
    return steps, tuple(names), values


def _read_json(path: Path) -> Optional[dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _renamed_final(summary: dict) -> dict:
    """An old run's summary names its final test metrics val/*: the record says test/*."""
    final = summary.get("final")
    if isinstance(final, dict) and any(k in run_files.OLD_NAMES for k in final):
        summary = {**summary, "final": {run_files.OLD_NAMES.get(k, k): v for k, v in final.items()}}
    return summary

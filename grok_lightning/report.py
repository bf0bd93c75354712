"""Re-render every figure of a finished (or interrupted) run from its files, without training:

    python -m grok_lightning.report <run_dir>        (make report RUN=<run_dir>)

Reads config.yaml, checkpoints/*.ckpt and metrics.csv; writes <run_dir>/figures/. The analysis
callbacks that apply to the run's task are replayed over the checkpoints with the same methods
they use during training (whatever the run's callback switches were), so the figures match:
scalars at every checkpoint, image frames at the checkpoints on their image cadence, then the
end-of-run figures from the last checkpoint. A run keeps only its newest checkpoints
(train.keep_checkpoints, default 3 besides last.ckpt): the report uses those that exist and says
how many frames they gave; the full metric curves come from metrics.csv. A bad run directory gives
one error line on stderr, exit code 2, and nothing written.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from grok_lightning import config as C
from grok_lightning import runs
from grok_lightning.module import METRICS

USAGE = "usage: python -m grok_lightning.report <run_dir>   (make report RUN=<run_dir>)"


class ReportError(ValueError):
    """A run directory the report cannot read: the message is one line."""


def load_run_config(run_dir: Path) -> DictConfig:
    from grok_lightning.tasks import TASKS

    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such directory")
    if not runs.is_run_dir(run_dir):
        raise ReportError(f"{run_dir}: not a run directory (no config.yaml)")
    try:
        saved = OmegaConf.load(run_dir / "config.yaml")
    except Exception as exc:
        raise ReportError(f"{run_dir}/config.yaml: {str(exc).splitlines()[0]}") from None
    task = saved.get("task") if isinstance(saved, DictConfig) else None
    if task not in TASKS:
        raise ReportError(f"{run_dir}/config.yaml names unknown task {task!r}")
    try:
        cfg = C._merge(OmegaConf.structured(TASKS[task].config_class), saved, f"{run_dir}/config.yaml")
        cfg.task, cfg.preset = task, saved.get("preset")
        C.validate(cfg)
    except C.ConfigError as exc:
        raise ReportError(str(exc)) from None
    return cfg


def checkpoints_by_step(run_dir: Path) -> list[tuple[int, Path]]:
    """(global_step, path) of every step=N.ckpt, ascending; last.ckpt when no step file has its step."""
    folder = run_dir / "checkpoints"
    found: dict[int, Path] = {}
    for path in folder.glob("step=*.ckpt"):
        m = re.fullmatch(r"step=(\d+)(?:-v\d+)?\.ckpt", path.name)
        if m:
            found.setdefault(int(m.group(1)), path)
    return sorted(found.items())


def load_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ReportError(
            f"{path}: cannot read checkpoint ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ReportError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return ckpt


def _number(row: dict, name: str) -> float:
    """A metric of one metrics.csv row; runs written before the rename logged test/* as val/*."""
    value = row.get(name) or row.get(name.replace("test/", "val/", 1))
    return float(value) if value else math.nan


def read_metrics_csv(path: Path) -> tuple[list[int], torch.Tensor] | None:
    """(steps, values [n, 1, len(METRICS)]) of the rows holding the module's metrics, or None."""
    if not path.is_file():
        return None
    steps, rows = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("train/loss"):
                continue
            steps.append(int(float(row["step"])))
            rows.append([_number(row, name) for name in METRICS])
    if not rows:
        return None
    return steps, torch.tensor(rows, dtype=torch.float64).unsqueeze(1)


def render(run_dir: Path, log=print) -> list[str]:
    """Re-render the figures of run_dir; returns the paths written."""
    from grok_lightning.callbacks import build_callbacks
    from grok_lightning.tasks import TASKS
    from grok_lightning.train import build_module

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ckpts = checkpoints_by_step(run_dir)
    last_path = runs.last_checkpoint(run_dir)
    if last_path is None and not ckpts:
        raise ReportError(f"{run_dir}: no checkpoints (checkpoints/*.ckpt) to render from")
    last = load_checkpoint(last_path or ckpts[-1][1])
    last_step = int(last.get("global_step", ckpts[-1][0] if ckpts else 0))
    if not ckpts or ckpts[-1][0] < last_step:
        ckpts.append((last_step, last_path))

    task = TASKS[cfg.task]
    datamodule, module = build_module(cfg, [cfg.train.seed], [cfg.optim.lr], [cfg.optim.weight_decay])

    def load_state(ckpt: dict) -> None:
        state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        try:
            module.model.load_state_dict(state)
        except RuntimeError as exc:
            raise ReportError(
                f"checkpoint does not fit the model of config.yaml: {str(exc).splitlines()[0]}"
            ) from None

    load_state(last)  # fail on a mismatched checkpoint before anything is written
    module.attach_data(datamodule)
    history = read_metrics_csv(run_dir / "metrics.csv")
    if history is None and last.get("grok_history"):
        saved = last["grok_history"]
        history = (list(saved["steps"]), saved["values"][:, :1])
    if history is not None:
        module.history_steps = list(history[0])
        module.history = list(history[1].unbind(0))

    callbacks = build_callbacks(cfg, task, run_dir, include_disabled=True)
    frame_steps = set()
    with torch.no_grad():
        for i, (step, path) in enumerate(ckpts):
            ckpt = last if path == last_path or step == last_step else load_checkpoint(path)
            load_state(ckpt)
            label = step - 1  # the module's convention: after `step` updates = "step step-1"
            for cb in callbacks:
                cb.record(module, label)
                if cb.frames_every and (i == 0 or step % cb.frames_every == 0 or step == last_step):
                    cb.draw_frames(module, label)
                    frame_steps.add(step)
        load_state(last)
        summary: dict = {}
        for cb in callbacks:
            cb.finish(module, last_step - 1)
            summary.update(cb.summary(module))
    written = [p for cb in callbacks for p in cb.written]
    if "key_frequencies" in summary:
        log(f"key frequencies: {summary['key_frequencies']}; final sparsity: {summary['final_sparsity']}")
    log(
        f"{len(written)} figures from {len(ckpts)} checkpoints, image frames at {len(frame_steps)} of them "
        f"(the run kept {len(ckpts)}; train.keep_checkpoints=-1 keeps all) -> {run_dir / 'figures'}"
    )
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1 or argv[0] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stderr if len(argv) != 1 else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help", "help") else 2
    try:
        render(Path(argv[0]))
    except (ReportError, C.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

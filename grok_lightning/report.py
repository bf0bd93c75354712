"""Re-render every figure of a finished (or interrupted) run from its files, without training:

    python -m grok_lightning.report <run_dir>        (make report RUN=<run_dir>)

Reads config.yaml, checkpoints/*.ckpt and metrics.csv; writes <run_dir>/figures/. The analysis
callbacks that apply to the run's task are replayed over the checkpoints with the same methods
they use during training (whatever the run's callback switches were), so the figures match:
scalars at every checkpoint, image frames at the checkpoints on their image cadence, then the
end-of-run figures from the last checkpoint. A run keeps only its newest checkpoints
(train.keep_checkpoints, default 1 besides last.ckpt): the report uses those that exist and says
how many frames they gave; the full metric curves come from metrics.csv. A bad run directory gives
one error line on stderr, exit code 2, and nothing written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from grok_lightning import config as C
from grok_lightning import runs
from grok_lightning.run_files import RunError, checkpoints_by_step, read_checkpoint

USAGE = "usage: python -m grok_lightning.report <run_dir>   (make report RUN=<run_dir>)"


class ReportError(RunError):
    """A run directory the report cannot render: the message is one line."""


def render(run_dir: Path, log=print) -> list[str]:
    """Re-render the figures of run_dir; returns the paths written."""
    from grok_lightning.callbacks import build_callbacks
    from grok_lightning.module import build_run_module
    from grok_lightning.record import load_run
    from grok_lightning.rundir import read_fitting_checkpoint
    from grok_lightning.tasks import TASKS

    record = load_run(run_dir)
    run_dir, cfg = record.path, record.config
    ckpts = checkpoints_by_step(run_dir)
    last_path = runs.last_checkpoint(run_dir)
    if last_path is None and not ckpts:
        raise ReportError(f"{run_dir}: no checkpoints (checkpoints/*.ckpt) to render from")
    task = TASKS[cfg.task]
    try:
        datamodule, module = build_run_module(cfg)
    except (ValueError, MemoryError) as exc:  # as train: a config.yaml this machine cannot build
        raise ReportError(f"{run_dir}/config.yaml: {str(exc).splitlines()[0]}") from None
    # Every checkpoint is checked before a figure is drawn, as a resume checks its own (readable,
    # fitting the model of config.yaml, finite): a NaN one would fail halfway through the figures.
    last = read_fitting_checkpoint(last_path or ckpts[-1][1], module)
    last_step = int(last["global_step"])
    if not ckpts or ckpts[-1][0] < last_step:
        ckpts.append((last_step, last_path))
    for step, path in ckpts:
        if path != last_path and step != last_step:
            read_fitting_checkpoint(path, module)

    def load_state(ckpt: dict) -> None:  # checked above: it fits
        module.load_state_dict(ckpt["state_dict"])

    load_state(last)
    module.attach_data(datamodule)
    logged = record.history
    if len(logged):
        module.history_steps = logged.steps.tolist()
        module.history = list(torch.from_numpy(logged.values).unsqueeze(1).unbind(0))
    elif last.get("grok_history"):  # no metrics.csv rows: the checkpoint carries the history
        module.history_steps = list(last["grok_history"]["steps"])
        module.history = list(last["grok_history"]["values"][:, :1].unbind(0))

    callbacks = build_callbacks(cfg, task, run_dir, include_disabled=True)
    frame_steps = set()
    with torch.no_grad():
        for i, (step, path) in enumerate(ckpts):
            ckpt = last if path == last_path or step == last_step else read_checkpoint(path)
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
    if "key_frequencies" in summary:  # the transformer's callback has no final_sparsity
        sparsity = f"; final sparsity: {summary['final_sparsity']}" if "final_sparsity" in summary else ""
        log(f"key frequencies: {summary['key_frequencies']}{sparsity}")
    log(
        f"{len(written)} figures from {len(ckpts)} checkpoints, image frames at {len(frame_steps)} of them "
        f"(the run kept {len(ckpts)}; train.keep_checkpoints=-1 keeps all) -> {run_dir / 'figures'}"
    )
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["-h"], ["--help"], ["help"]):
        print(USAGE)
        return 0
    if len(argv) != 1:
        print(f"error: one run directory expected, {len(argv)} arguments given; {USAGE}", file=sys.stderr)
        return 2
    try:
        render(Path(argv[0]))
    except (RunError, C.ConfigError, OSError) as exc:  # OSError: e.g. a name too long, a full disk
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

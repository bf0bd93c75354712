"""Progress of a sweep's batches: a live bar on a terminal, plain lines in a log.

On a terminal: one rich line per batch on rank 0 (the ranks share the terminal), updated at the
logging cadence (not per step). Where the console is no terminal (nohup, a scheduler's log), every
rank prints its own batch's lines, prefixed with its rank where there are several, flushed, at most
every 30 s and at least once a minute even when one training_step call outlasts that
(trainer.PlainProgress, whose line format these extend: it reads the clock at every optimiser step):

    [rank 1/2] batch g003-...: step 1,200 / 20,000  running 8/8 models  train/acc 1.0000 ...
        ETA 3.2 min  sweep 2/10 batches (16/80 models) done, 2 running  sweep ETA 25 min

`running`: the batch's models the step budget has not stopped yet; `ETA`: this batch, at its speed
so far (past the nominal budget: to the cap, "at most"); `sweep ... done, r running`: batches of the
plan with a result file, and those running (this one and the other ranks'); `sweep ETA`: the plan's
estimate of what is left (eta.makespan over its owners; this batch at its own ETA, the other ranks'
running batches at their estimate less the time they have run; only with a calibrated plan).
The batch's end line says how it ended.

$GROK_PROGRESS_EVERY_S (trainer.PROGRESS_EVERY_ENV) sets the seconds between two plain lines, for
sweeps and single runs alike.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Optional, Sequence

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape

from grok_lightning import config as C
from grok_lightning.sweep.eta import fmt_duration
from grok_lightning.sweep.plan import plan_eta
from grok_lightning.trainer import PlainProgress


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


# A batch lock touched this long before this process started is an earlier invocation's (whose
# holder died): the ranks of one launch start within seconds of each other.
STALE_LOCK_S = 60.0


class SweepStatus:
    """The plan's batches as one rank sees them: which have a result file, which run on other ranks
    (a lock file touched since this launch: run._train_locked touches it when it starts a batch; at
    most one a rank, the latest), and the time left (plan.plan_eta)."""

    def __init__(self, out_dir: Path, batches: Sequence[dict], world_size: int, since: float):
        self.out, self.batches, self.world_size = Path(out_dir), list(batches), world_size
        self.since = since - STALE_LOCK_S

    def items(self, batch_id: str, left_s: Optional[float]) -> dict:
        now, done, elsewhere = time.time(), set(), {}
        for b in self.batches:
            if (self.out / "batches" / f"{b['id']}.json").is_file():
                done.add(b["id"])
            elif b["id"] != batch_id:
                with contextlib.suppress(FileNotFoundError):
                    started = (self.out / "locks" / f"{b['id']}.lock").stat().st_mtime
                    if started >= self.since:
                        elsewhere[b["id"]] = max(now - started, 0.0)
        running = dict(sorted(elsewhere.items(), key=lambda kv: kv[1])[: self.world_size - 1])
        models = sum(len(b["models"]) for b in self.batches)
        models_done = sum(len(b["models"]) for b in self.batches if b["id"] in done)
        items = {
            "sweep": f"{len(done)}/{len(self.batches)} batches ({models_done}/{models} models) done, "
            f"{len(running) + 1} running"
        }
        rest = []
        for b in self.batches:
            est = b.get("est_s")
            if b["id"] == batch_id and left_s is not None:
                est = left_s
            elif b["id"] in running and est is not None:
                est = max(est - running[b["id"]], 0.0)  # it has run that long
            if b["id"] not in done:
                rest.append({**b, "est_s": est})
        eta_s = plan_eta(rest, self.world_size)
        if eta_s is not None:
            items["sweep ETA"] = fmt_duration(eta_s)
        return items


class _BatchLines(PlainProgress):
    """PlainProgress's line for a batch: its models still running, and the sweep's picture."""

    def __init__(self, batch_id: str, n_models: int, status: Optional[SweepStatus], **kwargs):
        super().__init__(**kwargs)
        self.batch_id, self.n_models, self.status = batch_id, n_models, status

    def items(self, trainer, pl_module, now: float) -> dict:
        items = super().items(trainer, pl_module, now)
        running = sum(r is None for r in pl_module.stop_reason[: self.n_models])  # not the padding copy
        items = {"step": items.pop("step"), "running": f"{running}/{self.n_models} models", **items}
        if self.status is not None:
            items.update(self.status.items(self.batch_id, self.left_s(trainer, pl_module, now)))
        return items

    def on_train_end(self, trainer, pl_module) -> None:
        pass  # the batch's end line (run._train_batch) follows


def progress_callback(
    cfg: DictConfig,
    batch_id: str,
    n_models: int,
    console: Optional[Console],
    *,
    live: bool = True,
    tag: str = "",
    status: Optional[SweepStatus] = None,
    clock=time.monotonic,
):
    """The batch's progress: silent without a console or with a quiet one; on a terminal a rich line
    `batch <id>: step s / max_steps` where `live` (rank 0), else silent; elsewhere plain lines
    prefixed with `tag`, on the console's file."""
    if console is None or console.quiet or (console.is_terminal and not live):
        return _Progress(lambda step: None, C.log_every(cfg))
    if not console.is_terminal:
        head = f"{tag}batch {batch_id}: "
        return _BatchLines(batch_id, n_models, status, clock=clock, head=head, out=console.file)
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

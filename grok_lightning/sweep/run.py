"""One rank's share of a sweep, then (rank 0) the merge: plan, train under locks, wait, finish."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Optional, Sequence

import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape

from grok_lightning import config as C
from grok_lightning import histories, runs
from grok_lightning.module import METRICS
from grok_lightning.outcome import OUTCOMES
from grok_lightning.sweep.batch import (
    batch_frequencies,
    cpu_settings,
    fit_batch,
    model_rows,
    padded,
    unpadded_frequencies,
)
from grok_lightning.sweep.launch import Launch, device_for, device_key
from grok_lightning.sweep.plan import make_plan, plan_id
from grok_lightning.sweep.results import finish, row_prefix
from grok_lightning.sweep.spec import (
    Model,
    Sweep,
    fmt_point,
)
from grok_lightning.sweep.sync import locked, read_json, try_lock, wait_for


def run_sweep(sweep: Sweep, launch: Launch, console: Optional[Console] = None) -> Optional[list[dict]]:
    """This rank's share of the sweep; rank 0 then waits for the others and merges. Returns the
    merged rows on rank 0, None elsewhere."""
    console = console or Console(soft_wrap=True)
    started = time.time()
    tag = escape(f"[rank {launch.rank}/{launch.world_size}] ") if launch.world_size > 1 else ""
    device = device_for(sweep.base_cfg, launch)
    cpu_settings(sweep.base_cfg, device)  # before the plan: the thread count is part of its device key
    out = sweep.out_dir
    pid = plan_id(sweep, device, launch.world_size)
    plan_path = out / "plans" / f"{pid}.json"
    if launch.rank == 0:
        for sub in ("batches", "plans"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        runs.atomic_write_text(out / "sweep.yaml", _resolved(sweep))
        console.print(
            f"sweep [bold]{sweep.name}[/]: {len(sweep.models)} models in {len(sweep.groups)} groups, "
            f"{launch.world_size} process(es) ({launch.launcher}), device {device} -> {out}"
        )
        # a second launch into this directory waits for the first one's plan and shares it
        plan_lock = out / "locks" / f"plan-{pid}.lock"
        with locked(plan_lock, sweep.scfg.wait_timeout_s, "another sweep's plan", console):
            if not plan_path.is_file():  # a plan, once written, is never rewritten: ranks all read the same
                runs.write_json(
                    plan_path,
                    {
                        "device": device_key(device),
                        "batches": make_plan(sweep, device, launch.world_size, console),
                    },
                )
    else:
        wait_for([plan_path], sweep.scfg.wait_timeout_s, f"rank 0's plan {plan_path}")
    batches = read_json(plan_path)["batches"]
    mine = [b for i, b in enumerate(batches) if i % launch.world_size == launch.rank]
    try:
        trained = _train_share(sweep, mine, device, launch.rank, tag, console)
    except BaseException as exc:
        # srun without --kill-on-bad-exit leaves rank 0 waiting: tell it why instead
        if launch.world_size > 1:
            reason = str(exc).splitlines()[0] if str(exc) else ""
            runs.atomic_write_text(
                out / "plans" / f"{pid}.rank{launch.rank}.failed",
                f"rank {launch.rank} failed: {type(exc).__name__}: {reason}\n",
            )
        raise
    skipped = len(mine) - trained
    if skipped:
        console.print(f"{tag}{skipped} of this rank's {len(mine)} batches were already done: skipped")
    if launch.rank != 0:
        return None

    def failed_rank() -> Optional[str]:  # a marker from this launch, not from an earlier one
        for marker in (out / "plans").glob(f"{pid}.rank*.failed"):
            if marker.stat().st_mtime >= started - 5:
                return marker.read_text().strip()
        return None

    # completion = every batch file of the plan exists: immune to stale markers of earlier launches
    wait_for(
        [out / "batches" / f"{b['id']}.json" for b in batches],
        sweep.scfg.wait_timeout_s,
        "the other ranks' batches",
        failed_rank,
    )
    with locked(out / "locks" / "merge.lock", sweep.scfg.wait_timeout_s, "another sweep's merge"):
        rows = finish(sweep, console)
        _print_wall_time(sweep, time.time() - started, console)
    return rows


def _print_wall_time(sweep: Sweep, this_run_s: float, console: Console) -> None:
    """Training time summed over every batch file (all invocations: resumes add up), and this one's."""
    walls = [read_json(p)["wall_s"] for p in sorted((sweep.out_dir / "batches").glob("*.json"))]
    total = sum(walls)
    runs.write_json(
        sweep.out_dir / "wall_time.json",
        {"wall_time_s": round(total, 3), "batches": len(walls), "this_invocation_s": round(this_run_s, 3)},
    )
    console.print(
        f"wall time: {total:,.1f} s training over {len(walls)} batches (all invocations), "
        f"{this_run_s:,.1f} s this invocation"
    )


def _train_share(
    sweep: Sweep, mine: list, device: torch.device, rank: int, tag: str, console: Console
) -> int:
    """Train this rank's batches that have no result file yet; returns how many it trained.
    A batch another process holds the lock of is left to it, and awaited once the rest is done:
    if that process dies (its lock frees, no result), this one trains the batch itself."""
    busy = []
    trained = sum(_train_locked(sweep, b, device, rank, tag, console, wait=False, busy=busy) for b in mine)
    if busy:
        console.print(
            f"{tag}{len(busy)} batches are being trained by another process: waiting for them "
            f"(e.g. {busy[0]['id']})"
        )
    return trained + sum(_train_locked(sweep, b, device, rank, tag, console, wait=True) for b in busy)


def _train_locked(sweep, batch, device, rank, tag, console, *, wait: bool, busy=None) -> bool:
    """Train one batch under its lock unless its result exists; True when this call trained it."""
    out = sweep.out_dir
    path = out / "batches" / f"{batch['id']}.json"
    lock_path = out / "locks" / f"{batch['id']}.lock"
    if path.is_file():
        return False
    if not wait:
        handle = try_lock(lock_path)
        if handle is None:
            busy.append(batch)
            return False
        lock = contextlib.closing(handle)
    else:
        lock = locked(lock_path, sweep.scfg.wait_timeout_s, f"batch {batch['id']} of another process")
    with lock:
        if path.is_file():  # the other process finished it while this one waited
            return False
        _train_batch(sweep, batch, device, rank, tag, console)
    return True


def _train_batch(sweep, batch, device, rank: int, tag: str, console: Console) -> None:
    out = sweep.out_dir
    path = out / "batches" / f"{batch['id']}.json"
    by_id = {m.id: m for m in sweep.models}
    group = sweep.groups[batch["group"]]
    models = [by_id[i] for i in batch["models"]]
    start = time.perf_counter()
    progress = _progress_callback(group.cfg, batch["id"], len(models), console if rank == 0 else None)
    module, trainer = fit_batch(group.cfg, padded(models), device, [progress])
    wall = time.perf_counter() - start
    freqs = unpadded_frequencies(batch_frequencies(group.cfg, module), len(models))
    rows = [
        {**row_prefix(sweep, m), **summary, "group": group.key, "batch": batch["id"], "rank": rank}
        for m, summary in zip(models, model_rows(group.cfg, module, models, freqs), strict=True)
    ]
    steps, values = module.history_tensor()
    values = values[:, : len(models)]  # without a padding copy
    histories.save_batch(
        out / "histories" / f"{batch['id']}.npz",
        [m.id for m in models],
        steps,
        values,
        METRICS,
        None if freqs is None else freqs[0],
    )
    runs.write_json(
        path, {"batch": batch["id"], "device": str(device), "wall_s": round(wall, 3), "rows": rows}
    )
    counts = Counter(r["outcome"] for r in rows)
    console.print(
        f"{tag}batch {batch['id']} ({fmt_point(_group_point(sweep, models))}): "
        f"{len(models)} models x {trainer.global_step} steps in {wall:.1f} s "
        f"({len(models) * trainer.global_step / wall:,.0f} model-steps/s) "
        + " ".join(f"{o}={counts[o]}" for o in OUTCOMES if counts[o])
    )


# ----------------------------------------------------------------------------------------------
# Progress: one line per batch, updated at the logging cadence (not per step), rank 0 only.
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


def _progress_callback(cfg: DictConfig, batch_id: str, n_models: int, console: Optional[Console]):
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


def _group_point(sweep: Sweep, models: Sequence[Model]) -> dict:
    """The grid values shared by all these models (their shape keys)."""
    points = [sweep.points[m.point] for m in models]
    return {k: v for k, v in points[0].items() if all(p[k] == v for p in points)}


def _resolved(sweep: Sweep) -> str:
    """The sweep as run: its settings, base overrides, grid and seeds, and the first model's config."""
    record = OmegaConf.to_container(sweep.scfg)
    record.update(
        base=sweep.base,
        grid=sweep.grid,
        seeds=sweep.seeds,
        first_model_config=OmegaConf.to_container(sweep.base_cfg),
    )
    return OmegaConf.to_yaml(OmegaConf.create(record))

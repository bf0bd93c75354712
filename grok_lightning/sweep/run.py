"""One rank's share of a sweep, then (rank 0) the merge: plan, train under locks, wait, finish."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from typing import Optional, Sequence

import torch
from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape

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
from grok_lightning.sweep.eta import fmt_duration
from grok_lightning.sweep.launch import Launch, device_for, device_key
from grok_lightning.sweep.plan import batches_done, calibrate_share, make_plan, plan_eta, plan_id
from grok_lightning.sweep.progress import SweepStatus, progress_callback
from grok_lightning.sweep.results import finish, row_prefix
from grok_lightning.sweep.spec import Model, Sweep, fmt_point
from grok_lightning.sweep.sync import locked, read_json, try_lock, wait_for


def run_sweep(sweep: Sweep, launch: Launch, console: Optional[Console] = None) -> Optional[list[dict]]:
    """This rank's share of the sweep; rank 0 then waits for the others and merges. Returns the
    merged rows on rank 0, None elsewhere."""
    console = console or Console(soft_wrap=True)
    started = time.time()
    # plain text (plain progress lines print it as is): escape() it in rich markup
    tag = f"[rank {launch.rank}/{launch.world_size}] " if launch.world_size > 1 else ""
    device = device_for(sweep.base_cfg, launch)
    cpu_settings(sweep.base_cfg, device)  # before the plan: the thread count is part of its device key
    out = sweep.out_dir
    pid = plan_id(sweep, device, launch.world_size)
    plan_path = out / "plans" / f"{pid}.json"
    try:
        if launch.rank == 0:
            plan = _plan(sweep, launch, device, plan_path, pid, console)
        else:
            if not plan_path.is_file():
                calibrate_share(sweep, device, launch, console, all_groups=False)
            wait_for([plan_path], sweep.scfg.wait_timeout_s, f"rank 0's plan {plan_path}")
            plan = read_json(plan_path)
        batches = plan["batches"]
        mine, others = _queue(batches, launch)
        status = SweepStatus(out, batches, launch.world_size, started)
        trained = _train_share(sweep, mine, others, device, launch.rank, tag, console, status)
    except BaseException as exc:
        # srun without --kill-on-bad-exit leaves rank 0 waiting: tell it why instead
        if launch.world_size > 1:
            reason = str(exc).splitlines()[0] if str(exc) else ""
            runs.atomic_write_text(
                out / "plans" / f"{pid}.rank{launch.rank}.failed",
                f"rank {launch.rank} failed: {type(exc).__name__}: {reason}\n",
            )
        raise
    if trained < len(mine):
        console.print(
            f"{escape(tag)}{len(mine) - trained} of this rank's {len(mine)} batches were done elsewhere"
        )
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
    training_s = time.time() - plan["_read_at"]
    if failure := failed_rank():  # globs the markers once
        console.print(f"{failure}; its batches were trained by the other ranks")
    with locked(out / "locks" / "merge.lock", sweep.scfg.wait_timeout_s, "another sweep's merge"):
        rows = finish(sweep, console)
        _print_wall_time(sweep, time.time() - started, plan.get("_eta_s"), training_s, console)
    return rows


def _plan(sweep: Sweep, launch: Launch, device, plan_path, pid: str, console: Console) -> dict:
    """Rank 0: calibrate (its share, then whatever is left), write the plan once, print its ETA."""
    out = sweep.out_dir
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
            seconds = calibrate_share(sweep, device, launch, console, all_groups=True)
            batches = make_plan(sweep, device, launch)
            eta_s = plan_eta(batches, launch.world_size)
            runs.write_json(
                plan_path,
                {
                    "device": device_key(device),
                    "calibration_s": round(seconds, 3),
                    "eta_s": eta_s,
                    "batches": batches,
                },
            )
    plan = read_json(plan_path)
    todo = [b for b in plan["batches"] if not (out / "batches" / f"{b['id']}.json").is_file()]
    eta_s = plan_eta(todo, launch.world_size)
    n_models = sum(len(b["models"]) for b in todo)
    console.print(
        f"plan: {n_models} models to train in {len(todo)} batches on {launch.world_size} process(es); "
        + (
            f"ETA {fmt_duration(eta_s)} of training (calibration: {fmt_duration(plan.get('calibration_s'))})"
            if eta_s is not None
            else "no ETA (calibration off or not measured)"
        )
    )
    return {**plan, "_eta_s": eta_s, "_read_at": time.time()}


def _queue(batches: list[dict], launch: Launch) -> tuple[list, list]:
    """(this rank's batches, the others'), each longest first as the plan lists them. A plan written
    before owners existed deals batches round-robin."""
    owner = [b.get("owner", i % launch.world_size) for i, b in enumerate(batches)]
    mine = [b for b, o in zip(batches, owner, strict=True) if o == launch.rank]
    return mine, [b for b, o in zip(batches, owner, strict=True) if o != launch.rank]


def _print_wall_time(
    sweep: Sweep, this_run_s: float, eta_s: Optional[float], training_s: float, console: Console
) -> None:
    """Training time summed over the batch files this sweep's results come from (every invocation
    of it: resumes add up; not another sweep's batches in the same out_dir), this invocation's,
    and the plan's ETA against the training wall time it estimated."""
    done = batches_done(sweep.out_dir)
    mine = sorted({done[m.id]["batch"] for m in sweep.models})  # merge has checked none is missing
    walls = [read_json(sweep.out_dir / "batches" / f"{b}.json")["wall_s"] for b in mine]
    total = sum(walls)
    record = {
        "wall_time_s": round(total, 3),
        "batches": len(walls),
        "this_invocation_s": round(this_run_s, 3),
    }
    line = f"wall time: {total:,.1f} s training over {len(walls)} batches (all invocations), "
    line += f"{this_run_s:,.1f} s this invocation"
    if eta_s:
        record.update(eta_s=round(eta_s, 3), training_wall_s=round(training_s, 3))
        line += f"; training took {fmt_duration(training_s)} against an ETA of {fmt_duration(eta_s)}"
        line += f" ({training_s / eta_s - 1:+.0%})"
    runs.write_json(sweep.out_dir / "wall_time.json", record)
    console.print(line)


def _train_share(
    sweep: Sweep,
    mine: list,
    others: list,
    device: torch.device,
    rank: int,
    tag: str,
    console: Console,
    status: SweepStatus,
) -> int:
    """Train this rank's batches that have no result file yet, then any of the other ranks' that
    nobody has started (a rank that finishes early takes work from one that is behind: the plan's
    owners are estimates). Returns how many of its own it trained. A batch another process holds
    the lock of is left to it and awaited at the end (by rank 0: every such batch; by the others:
    their own): if that process dies (its lock frees, no result), this one trains the batch itself."""
    busy, theirs = [], []
    args = (device, rank, tag, console, status)
    trained = sum(_train_locked(sweep, b, *args, wait=False, busy=busy) for b in mine)
    for b in others:
        _train_locked(sweep, b, *args, wait=False, busy=theirs)
    if rank == 0:  # rank 0 merges: it also awaits the others' batches, and trains those of a rank that died
        busy += theirs
    if busy:
        console.print(
            f"{escape(tag)}{len(busy)} batches are being trained by another process: waiting for them "
            f"(e.g. {busy[0]['id']})"
        )
    return trained + sum(_train_locked(sweep, b, *args, wait=True) for b in busy)


def _train_locked(sweep, batch, device, rank, tag, console, status, *, wait: bool, busy=None) -> bool:
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
        os.utime(lock_path)  # when this batch started: the other ranks' progress lines (SweepStatus)
        _train_batch(sweep, batch, device, rank, tag, console, status)
    return True


def _train_batch(sweep, batch, device, rank: int, tag: str, console: Console, status: SweepStatus) -> None:
    out = sweep.out_dir
    path = out / "batches" / f"{batch['id']}.json"
    by_id = {m.id: m for m in sweep.models}
    group = sweep.groups[batch["group"]]
    models = [by_id[i] for i in batch["models"]]
    start = time.perf_counter()
    progress = progress_callback(
        group.cfg, batch["id"], len(models), console, live=rank == 0, tag=tag, status=status
    )
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
        f"{escape(tag)}batch {batch['id']} ({fmt_point(_group_point(sweep, models))}): "
        f"{len(models)} models x {trainer.global_step} steps in {wall:.1f} s "
        f"({len(models) * trainer.global_step / wall:,.0f} model-steps/s) "
        + " ".join(f"{o}={counts[o]}" for o in OUTCOMES if counts[o])
    )


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

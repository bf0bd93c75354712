"""The plan: the batches of this sweep, written once by rank 0 and the same for every rank.

Before it, every rank calibrates its share of the groups (calibrate_share): the batch size K is
measured while the other ranks on this machine measure theirs, as they will later train side by
side. Results are cached in the sweep's calibration.json and per machine
($GROK_CACHE_DIR or ~/.cache/grok_lightning/calibration.json), keyed by the device, the number of
processes sharing it and the group's shape (not its length): a rerun, a longer run of the same grid
or another sweep with the same shapes calibrates nothing.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Optional

import torch
from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape

from grok_lightning import runs
from grok_lightning.sweep import eta
from grok_lightning.sweep.calibration import calibrate
from grok_lightning.sweep.launch import Launch, device_key
from grok_lightning.sweep.spec import PER_MODEL_KEYS, PRESENTATION_KEYS, Sweep, drop, short_hash
from grok_lightning.sweep.sync import locked, read_json


def batches_done(out_dir: Path) -> dict[str, dict]:
    """model id -> its row, from every finished batch file in the directory."""
    rows = {}
    for path in sorted((out_dir / "batches").glob("*.json")):
        for row in read_json(path)["rows"]:
            rows.setdefault(row["model_id"], row)
    return rows


def plan_id(sweep: Sweep, device: torch.device, world_size: int) -> str:
    cal = sweep.scfg.calibration
    key = {
        "world_size": world_size,
        "models": [m.id for m in sweep.models],
        "groups": [g.key for g in sweep.groups],
        "cap": sweep.scfg.max_models_per_group,
        "calibrate": cal.enabled,
        "device": device_key(device) if cal.enabled else None,
    }
    return short_hash(json.dumps(key), 12)


def machine_cache() -> Path:
    root = os.environ.get("GROK_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "grok_lightning"
    )
    return Path(root) / "calibration.json"


def calibration_device(device: torch.device, launch: Launch) -> str:
    """What a calibration's speeds hold for: this device, shared by this many processes."""
    return f"{device_key(device)}/processes={launch.local_world_size}"


def entry_key(sweep: Sweep, gi: int) -> tuple[str, int]:
    """(cache key, cap) of group gi: its config without what varies per model or only sets how long
    it runs and how often it logs (calibration times steps without logging), and the settings of the
    calibration itself."""
    group = sweep.groups[gi]
    identity = OmegaConf.to_container(group.cfg)
    for key in (*PRESENTATION_KEYS, *PER_MODEL_KEYS, "train.max_steps", "train.log_every"):
        drop(identity, key)
    cal = OmegaConf.to_container(sweep.scfg.calibration)
    cap = min(len(group.models), sweep.scfg.max_models_per_group or len(group.models))
    shape = short_hash(json.dumps([identity, cal], sort_keys=True), 12)
    return f"{shape}/cap={cap}", cap


def _cached(sweep: Sweep, where: str, key: str) -> Optional[dict]:
    """The sweep's own entry, else the machine's (then copied into the sweep's: calibration.json
    holds every measurement a sweep's plan used)."""
    own = sweep.out_dir / "calibration.json"
    for path in (own, machine_cache()):
        if path.is_file():
            entry = read_json(path).get(where, {}).get(key)
            if entry is not None:
                if path != own:
                    _store(sweep, where, key, entry, (own,))
                return entry
    return None


def _store(sweep: Sweep, where: str, key: str, entry: dict, paths=()) -> None:
    for path in paths or (sweep.out_dir / "calibration.json", machine_cache()):
        path.parent.mkdir(parents=True, exist_ok=True)
        with locked(path.with_name(path.name + ".lock"), sweep.scfg.wait_timeout_s, f"{path}"):
            cache = read_json(path) if path.is_file() else {}
            cache.setdefault(where, {})[key] = entry
            runs.write_json(path, cache)


def groups_to_calibrate(sweep: Sweep) -> list[int]:
    """Groups with models still to train whose K is not cached (calibration on, more than one model)."""
    if not sweep.scfg.calibration.enabled:
        return []
    done = batches_done(sweep.out_dir)
    return [
        gi
        for gi, group in enumerate(sweep.groups)
        if entry_key(sweep, gi)[1] > 1 and any(m.id not in done for m in group.models)
    ]


def calibrate_share(sweep: Sweep, device, launch: Launch, console: Console, *, all_groups: bool) -> float:
    """Calibrate this rank's share of the uncached groups (every world_size-th); with all_groups
    (rank 0) then any still missing, e.g. of a rank that died. Each group is measured under its own
    lock, so no group is measured twice. Returns the seconds spent."""
    start = time.perf_counter()
    where = calibration_device(device, launch)
    tag = escape(f"[rank {launch.rank}/{launch.world_size}]") if launch.world_size > 1 else ""
    todo = groups_to_calibrate(sweep)
    mine = [gi for i, gi in enumerate(todo) if i % launch.world_size == launch.rank]
    rest = [gi for gi in todo if gi not in mine] if all_groups else []
    for gi in mine + rest:
        key, cap = entry_key(sweep, gi)
        if _cached(sweep, where, key) is not None:
            continue
        lock = sweep.out_dir / "locks" / f"calibration-{short_hash(where + key, 12)}.lock"
        with locked(lock, sweep.scfg.wait_timeout_s, f"the calibration of group {sweep.groups[gi].key}"):
            if _cached(sweep, where, key) is None:
                t0 = time.perf_counter()
                entry = calibrate(sweep.groups[gi], cap, device, sweep.scfg.calibration, console, tag=tag)
                entry["seconds"] = round(time.perf_counter() - t0, 3)
                _store(sweep, where, key, entry)
    return time.perf_counter() - start


def make_plan(sweep: Sweep, device, launch: Launch) -> list[dict]:
    """Rank 0, after the calibration: skip models already in finished batch files (earlier plans
    included), split each group into balanced batches of at most its K, into at least one batch per
    rank where the models allow it; estimate each batch's seconds and give it an owner rank
    (longest first to the least loaded, eta.assign). Batches are listed longest first."""
    done = batches_done(sweep.out_dir)
    where = calibration_device(device, launch)
    chunks: list[tuple[int, list]] = []
    measured: dict[int, dict] = {}
    for gi, group in enumerate(sweep.groups):
        todo = [m for m in group.models if m.id not in done]
        if not todo:
            continue
        key, cap = entry_key(sweep, gi)
        entry = _cached(sweep, where, key) if sweep.scfg.calibration.enabled and cap > 1 else None
        k = entry["K"] if entry else cap
        if entry:
            measured[gi] = {int(size): ms for size, ms in entry["ms_per_model_step"].items()}
        n_batches = math.ceil(len(todo) / k)
        size = math.ceil(len(todo) / n_batches)  # balanced: 45 models at K=32 -> 23 + 22, not 32 + 13
        chunks.extend((gi, todo[i : i + size]) for i in range(0, len(todo), size))
    # Idle ranks cost more than smaller batches: split the largest batch until every rank has one.
    while 0 < len(chunks) < launch.world_size:
        i = max(range(len(chunks)), key=lambda j: len(chunks[j][1]))
        gi, models = chunks[i]
        if len(models) < 2:
            break
        half = math.ceil(len(models) / 2)
        chunks[i : i + 1] = [(gi, models[:half]), (gi, models[half:])]
    batches = []
    for gi, models in chunks:
        ids = [m.id for m in models]
        batch_id = f"g{gi:03d}-{sweep.groups[gi].key}-{short_hash(','.join(ids), 8)}"
        est = None
        if gi in measured:
            steps = sweep.groups[gi].cfg.train.max_steps
            est = round(eta.batch_seconds(len(ids), steps, eta.ms_per_model_step(measured[gi], len(ids))), 3)
        batches.append({"id": batch_id, "group": gi, "models": ids, "est_s": est})
    known = all(b["est_s"] is not None for b in batches)
    costs = [b["est_s"] if known else len(b["models"]) for b in batches]  # unknown: balance by count
    for b, owner in zip(batches, eta.assign(costs, launch.world_size), strict=True):
        b["owner"] = owner
    order = sorted(range(len(batches)), key=lambda i: (-costs[i], i))
    return [batches[i] for i in order]


def plan_eta(batches: list[dict], world_size: int) -> Optional[float]:
    """Seconds of training the plan takes on world_size ranks, or None without calibration."""
    if not batches or any(b.get("est_s") is None for b in batches):
        return None
    costs = [b["est_s"] for b in batches]
    return eta.makespan(costs, [b["owner"] for b in batches], world_size)

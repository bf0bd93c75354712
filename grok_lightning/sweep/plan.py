"""The plan: the batches of this sweep, written once by rank 0 and the same for every rank."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from rich.console import Console

from grok_lightning import runs
from grok_lightning.sweep.calibration import calibrate
from grok_lightning.sweep.launch import device_key
from grok_lightning.sweep.spec import (
    Sweep,
    short_hash,
)
from grok_lightning.sweep.sync import read_json


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


def make_plan(sweep: Sweep, device: torch.device, world_size: int, console: Console) -> list[dict]:
    """Rank 0: skip models already in finished batch files (earlier plans included), measure K
    per group (cached in calibration.json per device), split each group into balanced batches,
    and into at least one batch per rank where the models allow it."""
    done = batches_done(sweep.out_dir)
    cal_path = sweep.out_dir / "calibration.json"
    cache = read_json(cal_path) if cal_path.is_file() else {}
    per_device = cache.setdefault(device_key(device), {})
    chunks: list[tuple[int, list]] = []
    for gi, group in enumerate(sweep.groups):
        todo = [m for m in group.models if m.id not in done]
        if not todo:
            continue
        cap = min(len(group.models), sweep.scfg.max_models_per_group or len(group.models))
        if sweep.scfg.calibration.enabled and cap > 1:
            entry = per_device.get(f"{group.key}/cap={cap}")
            if entry is None:
                entry = per_device[f"{group.key}/cap={cap}"] = calibrate(
                    group, cap, device, sweep.scfg.calibration, console
                )
                runs.write_json(cal_path, cache)
            k = entry["K"]
        else:
            k = cap
        n_batches = math.ceil(len(todo) / k)
        size = math.ceil(len(todo) / n_batches)  # balanced: 45 models at K=32 -> 23 + 22, not 32 + 13
        chunks.extend((gi, todo[i : i + size]) for i in range(0, len(todo), size))
    # Idle ranks cost more than smaller batches: split the largest batch until every rank has one.
    while 0 < len(chunks) < world_size:
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
        batches.append({"id": batch_id, "group": gi, "models": ids})
    return batches

"""Calibration check: for a small, a medium and the largest parity shape, the batch size K the sweep's
calibration picks for a group of 45, re-measured against K = 1 (the sweep's own single-model batch):
no group may be slower per model than one model at a time."""

from __future__ import annotations

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.settings import PARITY_SHAPES, Scale, calibration_config, parity_group
from grok_lightning.sweep.calibration import calibrate, measure_ms_per_model_step
from grok_lightning.sweep.spec import Group


def run(console: Console, scale: Scale) -> dict:
    cpu = torch.device("cpu")
    cal = calibration_config(scale.check_calibration)
    table = Table(
        title=f"calibration: K per parity shape ({scale.group_models} models per group), ms per model-step"
    )
    for col in (
        "n_neurons",
        "train_size",
        "measured by calibration",
        "K",
        "K re-measured",
        "K=1 re-measured",
        "ok",
    ):
        table.add_column(col, justify="right")
    all_ok, rows = True, []
    for n_neurons, train_size in PARITY_SHAPES:
        cfg, models = parity_group(n_neurons, train_size, 100)
        models = models[: scale.group_models]
        group = Group(key=f"{n_neurons}x{train_size}", cfg=cfg, models=models)
        entry = calibrate(group, len(models), cpu, cal, Console(quiet=True))
        k = entry["K"]
        single = measure_ms_per_model_step(cfg, models[:1], cpu, cal)
        chosen = single if k == 1 else measure_ms_per_model_step(cfg, models[:k], cpu, cal)
        ok = chosen <= 1.15 * single  # re-measurements on a shared CPU differ by several percent
        all_ok &= ok
        rows.append({"shape": [n_neurons, train_size], "K": k, "K_ms": chosen, "K1_ms": single, "ok": ok})
        measured = ", ".join(f"{kk}: {v:.3g}" for kk, v in entry["ms_per_model_step"].items())
        table.add_row(
            str(n_neurons),
            str(train_size),
            measured,
            str(k),
            f"{chosen:.3g}",
            f"{single:.3g}",
            "yes" if ok else "NO",
        )
    console.print(table)
    return {"ok": all_ok, "rows": rows}

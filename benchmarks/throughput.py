"""Throughput table: model-steps per second of the sweep's own training path (sweep.batch.fit_batch,
each batch with its padding copy, as the sweep trains it), per parity shape and for the main modadd
shape. Columns: one model at a time (alone, without the sweep's padding copy: a plain single
run); the K the sweep's calibration picks for a group of 45 (8 for
modadd); that batch on every core at once (benchmarks.all_cores). Each rate times whole fit_batch
calls (data, model, Trainer set-up included), so short --steps runs read low."""

from __future__ import annotations

import os
import time

import torch
from rich.console import Console
from rich.table import Table

from benchmarks import all_cores, settings
from grok_lightning.sweep.batch import fit_batch, padded
from grok_lightning.sweep.calibration import calibrate
from grok_lightning.sweep.spec import Group

CPU = torch.device("cpu")


def model_steps_per_s(cfg, models, steps: int, pad: bool = True) -> float:
    """Real models only: the padding copy is overhead, as in the sweep."""
    start = time.perf_counter()
    fit_batch(cfg, padded(models) if pad else list(models), CPU)
    return len(models) * steps / (time.perf_counter() - start)


def _rows(scale: settings.Scale) -> list:
    """One row per shape: its config, models and the batch size K to time."""
    rows = []
    for n_neurons, train_size in settings.PARITY_SHAPES:
        cfg, models = settings.parity_group(n_neurons, train_size, scale.steps)
        models = models[: scale.group_models]
        group = Group(key=f"parity {n_neurons}x{train_size}", cfg=cfg, models=models)
        chosen = calibrate(
            group, len(models), CPU, settings.calibration_config(scale.calibration), Console(quiet=True)
        )
        shape = {"task": "parity", "n_neurons": n_neurons, "train_size": train_size}
        name = f"parity {n_neurons} x {train_size}"
        rows.append(
            {"shape": name, "cfg": cfg, "models": models, "k": chosen["K"], "calibration": chosen, **shape}
        )
    cfg, models = settings.modadd_main(scale.steps, settings.MODADD_BATCH)
    rows.append(
        {"shape": "modadd main (24 x 500)", "cfg": cfg, "models": models, "k": len(models), "task": "modadd"}
    )
    return rows


def run(console: Console, scale: settings.Scale, processes: int = 0) -> dict:
    processes = processes or os.cpu_count() or 1
    model_steps_per_s(*settings.parity_group(16, 1000, 20), 20)  # first-fit costs, untimed
    rows = _rows(scale)
    results = []
    for row in rows:
        # one model alone, as a single run trains it: no padding copy
        sequential = model_steps_per_s(row["cfg"], row["models"][:1], scale.steps, pad=False)
        batched = model_steps_per_s(row["cfg"], row["models"][: row["k"]], scale.steps)
        # the other way to use every core: one process, one batch, torch threads = processes
        threads = torch.get_num_threads()
        torch.set_num_threads(processes)
        try:
            threaded = model_steps_per_s(row["cfg"], row["models"][: row["k"]], scale.steps)
        finally:
            torch.set_num_threads(threads)
        measured = {
            "shape": row["shape"],
            "K": row["k"],
            "sequential": sequential,
            "batched": batched,
            "batched_threads": threaded,
        }
        # what the calibration measured per K (ms per model-step), from which it chose K
        results.append(
            {**measured, "calibration_ms_per_model_step": row.get("calibration", {}).get("ms_per_model_step")}
        )
    jobs = [
        {key: row[key] for key in ("task", "n_neurons", "train_size", "k") if key in row}
        | {"steps": scale.steps}
        for row in rows
    ]
    for result, cores in zip(results, all_cores.run_all(jobs, processes)):
        result["all_cores"] = cores.get("model_steps_per_s")
        result["all_cores_error"] = cores.get("error")

    table = Table(
        title=f"model-steps/s, {scale.steps:,} steps per fit; batches with their padding copy "
        f"(torch threads {torch.get_num_threads()}; all cores: one process with {processes} threads, or "
        f"{processes} processes x 1 thread each training its own batch)"
    )
    columns = ("shape", "K", "sequential", "batched (K)", "vs seq.", f"{processes} threads", "vs seq.")
    for col in (*columns, f"{processes} processes", "vs seq."):
        table.add_column(col, justify="left" if col == "shape" else "right")
    for r in results:
        measured = r["all_cores"] is not None
        cores = f"{r['all_cores']:,.0f}" if measured else "-"
        cores_ratio = f"{r['all_cores'] / r['sequential']:.1f}x" if measured else r["all_cores_error"]
        table.add_row(
            r["shape"],
            str(r["K"]),
            f"{r['sequential']:,.0f}",
            f"{r['batched']:,.0f}",
            f"{r['batched'] / r['sequential']:.1f}x",
            f"{r['batched_threads']:,.0f}",
            f"{r['batched_threads'] / r['sequential']:.1f}x",
            cores,
            cores_ratio,
        )
    console.print(table)
    return {"steps": scale.steps, "processes": processes, "rows": results}

"""The parity grid's floor: the fewest hours the 20,000-step phase grid (configs/sweeps/parity_phase.yaml)
could take on this machine if a model-step cost only its two large matrix products, x @ W_input
(forward) and x^T @ dh (W_input's gradient), each timed on one thread for a batch of 8 models of
each of the sweep file's groups (its shapes, model counts and steps). The rank-1 products of the
output layer, the ReLU and its mask, Adam and the evaluations are left out, so no implementation
of this model reaches the floor; the sweep's own ms per model-step (its calibration, in the plan)
says how near it runs."""

from __future__ import annotations

import os
import time

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.settings import Scale
from grok_lightning.sweep.spec import load_sweep

BATCH = 8  # models per product: the sweep's batches of the large shapes hold 8


def products_ms(n: int, h: int, inputs: int, repeats: int, iters: int) -> float:
    """ms per model-step of the two large products for train size n, width h and `inputs` input
    columns (least of repeats)."""
    x = torch.randint(0, 2, (BATCH, n, inputs)).float()
    w = torch.randn(BATCH, inputs, h)
    dh = torch.randn(BATCH, n, h)
    xt = x.transpose(1, 2)
    best = float("inf")
    for _ in range(repeats + 1):  # the first round warms up
        start = time.perf_counter()
        for _ in range(iters):
            torch.bmm(x, w)
            torch.bmm(xt, dh)
        best = min(best, (time.perf_counter() - start) / iters / BATCH * 1e3)
    return best


def run(console: Console, scale: Scale) -> dict:
    sweep = load_sweep(["sweep=parity_phase"])  # the grid's shapes, models and steps, from its file
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    repeats, iters = (1, 2) if scale.quick else (5, 20)
    cores = os.cpu_count() or 1
    table = Table(title=f"products of one model-step, one thread (batches of {BATCH})")
    for col in ("train_size x n_neurons", "MFLOP", "ms / model-step", "GFLOP/s", "grid h, one core"):
        table.add_column(col, justify="right")
    rows, total_s = [], 0.0
    try:
        for group in sweep.groups:
            cfg = group.cfg
            n, h, inputs = cfg.data.train_size, cfg.model.n_neurons, cfg.data.n_bits + 1  # + the bias input
            ms = products_ms(n, h, inputs, repeats, iters)
            flop = 4 * n * inputs * h  # two products of 2 n inputs h
            group_s = ms / 1e3 * len(group.models) * cfg.train.max_steps
            total_s += group_s
            rows.append({"train_size": n, "n_neurons": h, "ms": ms, "gflops": flop / ms / 1e6})
            table.add_row(
                f"{n} x {h}",
                f"{flop / 1e6:.1f}",
                f"{ms:.3f}",
                f"{flop / ms / 1e6:.1f}",
                f"{group_s / 3600:.2f}",
            )
    finally:
        torch.set_num_threads(threads)
    console.print(table)
    floor_h = total_s / cores / 3600
    console.print(
        f"floor: {total_s / 3600:.2f} h of products on one core; {floor_h:.2f} h on {cores} cores "
        f"({len(sweep.models):,} models, {sweep.base_cfg.train.max_steps:,} steps each)"
    )
    return {"rows": rows, "one_core_h": total_s / 3600, "cores": cores, "floor_h": floor_h}

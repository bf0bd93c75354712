"""Speed of the Lightning path against a plain PyTorch loop, in the same process (main preset):

1. ms per optimiser step: a plain loop (same model, loss, torch.optim.AdamW, the same metrics at the
   same cadence) vs `grok_lightning.train` with its default logging (CSV + W&B offline, progress
   bar, checkpoints) and callbacks off, best of 5 interleaved pairs; target ratio <= 1.10.
2. The same run with every analysis callback on at its default cadence: target <= 1.10 over (1).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.settings import MODADD_CADENCE, Scale
from grok_lightning import config as C
from grok_lightning.module import build_module
from grok_lightning.train import train

REPEATS = 5  # interleaved plain / Lightning pairs (3 left the ratio to one noisy run here: 1.20-1.37)


def plain_ms_per_step(cfg, steps: int) -> float:
    """The same math without Lightning: forward, CE/p, backward, torch AdamW, metrics every 100 steps."""
    datamodule, module = build_module(cfg, [cfg.train.seed], [cfg.optim.lr], [cfg.optim.weight_decay])
    module.attach_data(datamodule)
    model, objective = module.model, module.objective
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        betas=(cfg.optim.beta1, cfg.optim.beta2),
        eps=cfg.optim.eps,
    )
    inputs, targets = module.data["train"]
    log_every = C.log_every(cfg)
    start = time.perf_counter()
    for step in range(steps):
        loss = objective.loss(model(*inputs), targets)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        if step % log_every == 0:
            module.measure(loss.detach()).tolist()
    return (time.perf_counter() - start) / steps * 1e3


def lightning_ms_per_step(cfg_overrides: list[str], steps: int, root: str, callbacks_on: bool) -> float:
    toggles = C.callback_switches(callbacks_on)
    cfg = C.load("modadd", "main", [*cfg_overrides, f"train.max_steps={steps}", f"run_root={root}", *toggles])
    run_dir = Path(train(cfg, console=Console(quiet=True)))
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary["wall_time_s"] / steps * 1e3


def run(console: Console, scale: Scale) -> dict:
    steps = scale.overhead_steps
    cfg = C.load("modadd", "main", [f"train.max_steps={steps}", *MODADD_CADENCE])
    # Both sides alike: the run sets these from its config too.
    torch.set_flush_denormal(cfg.train.flush_denormal)
    if cfg.train.cpu_threads:
        torch.set_num_threads(cfg.train.cpu_threads)
    console.print(
        f"main preset, {steps} steps per run, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

    # Interleaved repeats, best of each: the shared machine's noise (runs of the same loop a minute
    # apart differ by up to 30% here) falls on both sides alike.
    plain_runs, core_runs = [], []
    with tempfile.TemporaryDirectory() as root:
        plain_ms_per_step(cfg, min(200, steps))  # warm-up
        for _ in range(REPEATS):
            plain_runs.append(plain_ms_per_step(cfg, steps))
            core_runs.append(lightning_ms_per_step(MODADD_CADENCE, steps, root, callbacks_on=False))
        analysed = lightning_ms_per_step(MODADD_CADENCE, steps, root, callbacks_on=True)
    plain_best, core = min(plain_runs), min(core_runs)

    table = Table(title="ms per optimiser step (main preset)")
    for col in ("loop", "ms/step", "ratio", "target"):
        table.add_column(col)
    table.add_row(f"plain PyTorch loop (best of {REPEATS})", f"{plain_best:.3f}", "1.00", "")
    table.add_row(
        f"Lightning, default logging, callbacks off (best of {REPEATS})",
        f"{core:.3f}",
        f"{core / plain_best:.2f}",
        "<= 1.10",
    )
    table.add_row(
        "Lightning, every callback on", f"{analysed:.3f}", f"{analysed / core:.2f} x callbacks off", "<= 1.10"
    )
    console.print(table)
    runs = lambda ms: ", ".join(f"{x:.3f}" for x in ms)  # noqa: E731
    console.print(f"plain loop: {runs(plain_runs)}; Lightning: {runs(core_runs)} ms/step (the spread: noise)")
    return {
        "steps": steps,
        "plain_ms": plain_runs,
        "lightning_ms": core,
        "lightning_runs_ms": core_runs,
        "lightning_callbacks_ms": analysed,
        "ratio": core / plain_best,
        "callbacks_ratio": analysed / core,
    }

"""Speed of the Lightning path against a plain PyTorch loop, in the same process (main preset):

1. ms per optimiser step: a plain loop (same model, loss, torch.optim.AdamW, the same metrics at the
   same cadence) vs `grok_lightning.train` with its default logging (CSV + W&B offline, progress
   bar, checkpoints) and callbacks off; target ratio <= 1.25.
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

    with tempfile.TemporaryDirectory() as root:
        plain_ms_per_step(cfg, min(200, steps))  # warm-up
        plain = plain_ms_per_step(cfg, steps)
        core = lightning_ms_per_step(MODADD_CADENCE, steps, root, callbacks_on=False)
        analysed = lightning_ms_per_step(MODADD_CADENCE, steps, root, callbacks_on=True)
        plain_again = plain_ms_per_step(cfg, steps)
    plain_best = min(plain, plain_again)

    table = Table(title="ms per optimiser step (main preset)")
    for col in ("loop", "ms/step", "ratio", "target"):
        table.add_column(col)
    table.add_row("plain PyTorch loop (best of 2)", f"{plain_best:.3f}", "1.00", "")
    table.add_row(
        "Lightning, default logging, callbacks off", f"{core:.3f}", f"{core / plain_best:.2f}", "<= 1.25"
    )
    table.add_row(
        "Lightning, every callback on", f"{analysed:.3f}", f"{analysed / core:.2f} x callbacks off", "<= 1.10"
    )
    console.print(table)
    console.print(f"plain loop runs: {plain:.3f} and {plain_again:.3f} ms/step (spread shows machine noise)")
    return {
        "steps": steps,
        "plain_ms": [plain, plain_again],
        "lightning_ms": core,
        "lightning_callbacks_ms": analysed,
        "ratio": core / plain_best,
        "callbacks_ratio": analysed / core,
    }

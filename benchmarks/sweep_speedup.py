"""Sweep speed-up: model-steps per second of one batched parity group (45 models: 9 seeds x 5 weight
decays, 16 neurons, 1,000 training sequences, one GrokModule) against the same models trained one
at a time through the normal single-run path (`grok_lightning.train.train`: run directory, CSV log,
checkpoints), in this process; both sides include their setup. Target on a CPU: >= 5x. The
full-length sweep's cadences are kept (log every 40 steps, checkpoint every 200), so shorter bench
runs spend the same share of their time on logging.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.settings import WEIGHT_DECAYS, Scale, parity_config, parity_group
from grok_lightning.sweep.batch import fit_batch
from grok_lightning.train import train


def _callbacks_off(cfg) -> list[str]:
    """The sweep trains without analysis callbacks; so does the single-run side here."""
    return [f"callbacks.{k}.enabled=false" for k, v in cfg.callbacks.items() if hasattr(v, "enabled")]


def run(console: Console, scale: Scale) -> dict:
    steps = scale.speedup_steps
    cfg, group = parity_group(16, 1000, steps)
    models = group[: scale.group_models]
    cpu = torch.device("cpu")
    start = time.perf_counter()
    fit_batch(cfg, models, cpu)
    batched = len(models) * steps / (time.perf_counter() - start)

    seq_models = [m for m in group if m.weight_decay == WEIGHT_DECAYS[0]][
        : scale.sequential_runs
    ]  # seeds 0, 1, ..
    fit_s, total_s = 0.0, 0.0
    with tempfile.TemporaryDirectory() as root:
        quiet = Console(quiet=True)
        for m in seq_models:
            run_cfg = parity_config(
                16,
                1000,
                steps,
                (
                    f"train.seed={m.seed}",
                    f"optim.weight_decay={m.weight_decay}",
                    f"run_root={root}",
                    "logger=csv",
                    "train.progress_bar=false",
                    *_callbacks_off(cfg),
                ),
            )
            start = time.perf_counter()
            with warnings.catch_warnings():  # the CSV logger's notes on fresh run directories
                warnings.simplefilter("ignore")
                run_dir = train(run_cfg, console=quiet)
            total_s += time.perf_counter() - start
            fit_s += json.loads((Path(run_dir) / "summary.json").read_text())["wall_time_s"]
    sequential = len(seq_models) * steps / total_s
    sequential_fit = len(seq_models) * steps / fit_s

    table = Table(
        title=f"parity group: {len(models)} models, 16 neurons, 1,000 sequences, {steps:,} steps each"
    )
    for col in ("how", "models", "model-steps/s", "vs sequential"):
        table.add_column(col, justify="left" if col == "how" else "right")
    n = len(models)
    table.add_row(
        f"batched (one GrokModule, K={n})", str(n), f"{batched:,.0f}", f"{batched / sequential:.1f}x"
    )
    table.add_row("sequential train.train, end to end", str(len(seq_models)), f"{sequential:,.0f}", "1.0x")
    table.add_row(
        "sequential, fit only (no setup)",
        str(len(seq_models)),
        f"{sequential_fit:,.0f}",
        f"{sequential_fit / sequential:.1f}x",
    )
    console.print(table)
    ratio = batched / sequential
    verdict = "[green]meets[/]" if ratio >= 5 else "[red]misses[/]"
    console.print(
        f"batched / sequential: [bold]{ratio:.1f}x[/] ({verdict} the >= 5x CPU target); "
        f"vs sequential fit time alone: {batched / sequential_fit:.1f}x"
    )
    return {
        "steps": steps,
        "batched": batched,
        "sequential": sequential,
        "sequential_fit": sequential_fit,
        "sequential_runs": len(seq_models),
        "ratio": ratio,
    }

"""Sweep benchmarks (not tests), called by `make bench` as `run(console)`:

1. Throughput in model-steps per second of one batched parity group (45 models: 9 seeds x 5 weight
   decays, 16 neurons, 1,000 training sequences) against the same models trained one at a time
   through the normal single-run path (`grok_lightning.train.train`: run directory, CSV log,
   checkpoints), in this process; both sides include their setup. Target on a CPU: >= 5x.
2. Calibration: for a small, a medium and the largest parity shape, the batch size K the sweep's
   calibration picks, re-measured against K = 1 (the sweep's own single-model batch): no group may
   be slower per model than one model at a time.

The full-length runs' cadences are kept (log every 40 steps, checkpoint every 200), so shorter
bench runs spend the same share of their time on logging. Numbers depend on the machine and its
load: compare only within one run.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from grok_lightning import config as C
from grok_lightning import sweep as S
from grok_lightning.sweep import calibration as SC
from grok_lightning.sweep.spec import CalibrationConfig
from grok_lightning.train import train

STEPS = 1000  # per model, both sides
SEQUENTIAL_MODELS = 6  # enough for a per-model rate, few enough for `make bench` (~1.5 min in all)
CADENCE = ["train.log_every=40", "train.checkpoint_every=200"]  # those of the 20,000-step sweep
SWEEP_SETTINGS = [  # configs/sweeps/parity_phase.yaml's base
    "optim.regularization=l2",
    "optim.lr=0.003",
    "optim.beta1=0.99",
    "optim.beta2=0.98",
    "data.test_size=5000",
]
SHAPES = [(16, 1000), (64, 1250), (258, 1750)]  # (n_neurons, train_size)
WEIGHT_DECAYS = [0.01, 0.03, 0.1, 0.3, 1.0]


def _callbacks_off(cfg) -> list[str]:
    """The sweep trains without analysis callbacks; so does the single-run side here."""
    return [f"callbacks.{k}.enabled=false" for k, v in cfg.callbacks.items() if hasattr(v, "enabled")]


def _group(n_neurons: int, train_size: int, steps: int):
    overrides = [*SWEEP_SETTINGS, *CADENCE, f"model.n_neurons={n_neurons}", f"data.train_size={train_size}"]
    cfg = C.load("parity", None, [*overrides, f"train.max_steps={steps}"])
    models = [
        S.Model(id=f"{seed}-{wd}", point=0, seed=seed, lr=cfg.optim.lr, weight_decay=wd)
        for seed, wd in itertools.product(range(9), WEIGHT_DECAYS)
    ]
    return cfg, overrides, models


def batched_vs_sequential(console: Console, steps: int = STEPS) -> float:
    cfg, overrides, models = _group(16, 1000, steps)
    cpu = torch.device("cpu")
    start = time.perf_counter()
    S.fit_batch(cfg, models, cpu)
    batched = len(models) * steps / (time.perf_counter() - start)

    seq_models = models[:: len(WEIGHT_DECAYS)][:SEQUENTIAL_MODELS]  # seeds 0..8 at weight decay 0.01
    fit_s, total_s = 0.0, 0.0
    with tempfile.TemporaryDirectory() as root:
        quiet = Console(quiet=True)
        for m in seq_models:
            run_cfg = C.load(
                "parity",
                None,
                [
                    *overrides,
                    f"train.max_steps={steps}",
                    f"train.seed={m.seed}",
                    f"optim.weight_decay={m.weight_decay}",
                    f"run_root={root}",
                    "logger=csv",
                    "train.progress_bar=false",
                    *_callbacks_off(cfg),
                ],
            )
            start = time.perf_counter()
            with warnings.catch_warnings():  # the CSV logger's notes on fresh run directories
                warnings.simplefilter("ignore")
                run_dir = train(run_cfg, console=quiet)
            total_s += time.perf_counter() - start
            fit_s += json.loads((Path(run_dir) / "summary.json").read_text())["wall_time_s"]
    sequential = len(seq_models) * steps / total_s
    sequential_fit = len(seq_models) * steps / fit_s

    table = Table(title=f"parity group: 45 models, 16 neurons, 1,000 sequences, {steps:,} steps each")
    for col in ("how", "models", "model-steps/s", "vs sequential"):
        table.add_column(col, justify="left" if col == "how" else "right")
    table.add_row("batched (one GrokModule, K=45)", "45", f"{batched:,.0f}", f"{batched / sequential:.1f}x")
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
    return ratio


def calibration_check(console: Console) -> bool:
    cpu = torch.device("cpu")
    cal = C.OmegaConf.structured(CalibrationConfig(steps=40, warmup_steps=20, max_seconds=0.6))
    table = Table(title="calibration: K per parity shape (45 models per group), ms per model-step")
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
    all_ok = True
    for n_neurons, train_size in SHAPES:
        cfg, _, models = _group(n_neurons, train_size, 100)
        group = S.Group(key=f"{n_neurons}x{train_size}", cfg=cfg, models=models)
        entry = S.calibrate(group, len(models), cpu, cal, Console(quiet=True))
        k = entry["K"]
        single = SC.measure_ms_per_model_step(cfg, models[:1], cpu, cal)
        chosen = single if k == 1 else SC.measure_ms_per_model_step(cfg, models[:k], cpu, cal)
        ok = chosen <= 1.15 * single  # re-measurements on a shared CPU differ by several percent
        all_ok &= ok
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
    return all_ok


def run(console: Console) -> None:
    console.print(f"[bold]sweeps[/] (CPU, {torch.get_num_threads()} thread(s); compare only within this run)")
    batched_vs_sequential(console)
    calibration_check(console)


if __name__ == "__main__":
    run(Console())

"""The command line: `python -m grok_lightning.sweep sweep=<name> [key=value ...]`."""

from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

from grok_lightning import config as C
from grok_lightning.sweep.launch import detect_launch, device_for
from grok_lightning.sweep.run import run_sweep
from grok_lightning.sweep.spec import (
    SweepError,
    available_sweeps,
    load_sweep,
    make_out_dir,
    phase_axes,
    phase_bars,
)
from grok_lightning.sweep.workers import start_workers, usable_cores, watch_parent, worker_count

USAGE = """usage: python -m grok_lightning.sweep sweep=<name or file.yaml> [key=value ...]
sweeps: {sweeps}. e.g. sweep=parity_phase seeds=3 grid.model.n_neurons=[16,32] train.max_steps=2000
It starts one worker process per usable core (workers=N to choose, workers=1 for this process only);
under a launcher (torchrun, srun, fabric run) every process takes its share of the batches."""


def quiet_lightning() -> None:
    # one Trainer per batch: its "GPU available" banner would repeat for every batch
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        print(USAGE.format(sweeps=", ".join(available_sweeps())))
        return 0
    try:
        sweep = load_sweep(argv)
        launch = detect_launch()
        phase_axes(sweep)  # a bad axis fails now, not after training
        phase_bars(sweep)
        device = device_for(sweep.base_cfg, launch)
        n = 1
        if launch.launcher == "none":
            n = worker_count(sweep.scfg, sweep.base_cfg, device, len(sweep.models))
        if n == 1:  # with workers, this process only starts and waits for them: they check the rest
            detect_launch(sweep.scfg.world_size)
        make_out_dir(sweep.out_dir)  # the first write: after every check, before any process starts
    except C.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if n > 1:
        print(f"sweep {sweep.name}: starting {n} worker processes ({usable_cores()} usable cores)")
        return start_workers(argv, n)
    quiet_lightning()
    watch_parent()
    try:
        run_sweep(sweep, launch)
    except (SweepError, OSError) as exc:  # OSError: e.g. a full disk (every file is written atomically)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0

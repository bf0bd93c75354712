"""Sweeps: `python -m grok_lightning.sweep sweep=<name> [key=value ...]`.

One module per job: spec (the sweep file -> models and groups), launch (ranks, devices), batch
(training one batch of models), calibration (models per batch, measured), plan (the batches, shared
by every rank), sync (locks and waiting on files), results (results.csv, figures, W&B), run (one
rank's share, then the merge) and cli (the command line).


    configs/sweeps/<name>.yaml -> grid x seeds = models -> groups (same config except lr, weight decay
    and seed: the core batches exactly those per model) -> batches of K models (K measured per group
    on this device) -> each launcher rank trains batches i % world_size == rank, one GrokModule and a
    single-device Trainer per batch -> batches/<id>.json -> results.csv, phase_diagram.png, W&B.

Arguments: `sweep=` a name in configs/sweeps/ or a path to a YAML file; keys of the sweep file
(`seeds=3`, `grid.model.n_neurons=[16,32]`, `grid.n_neurons=[16,32]` for short, `out_dir=...`,
`world_size=2`); any other key is a run-config override applied to every model
(`train.max_steps=2000`, the same as `base.train.max_steps=2000`).

Restarts: a batch file is written atomically when its batch is done, and a rerun into the same
directory skips it. Each batch trains under a lock (locks/<batch>.lock, flock: freed when its
process dies): a second sweep started into the same directory leaves the batches the first holds
to it, trains the rest, then waits for those (and trains any whose holder died). wall_time.json
sums the batch files' training time over every invocation. A batch trains with a copy of its last
model appended (`padded`): a model's results do not depend on which batch it was in (see there
for how far that holds). The batching plan (plans/<id>.json) is written once per sweep and device
by rank 0 and read by every rank, so all ranks agree on the batches even when a plan is reused.
"""

from __future__ import annotations

from grok_lightning.sweep.batch import SUMMARY_COLUMNS, batch_frequencies, cpu_settings, fit_batch, model_rows
from grok_lightning.sweep.calibration import calibrate, candidate_sizes, choose_k
from grok_lightning.sweep.cli import main
from grok_lightning.sweep.launch import Launch, detect_launch, device_for, device_key
from grok_lightning.sweep.plan import calibrate_share, make_plan, plan_eta, plan_id
from grok_lightning.sweep.run import run_sweep
from grok_lightning.sweep.spec import (
    Group,
    Model,
    Sweep,
    SweepError,
    available_sweeps,
    load_sweep,
    phase_axes,
    phase_bars,
)

__all__ = [
    "SUMMARY_COLUMNS",
    "Group",
    "Launch",
    "Model",
    "Sweep",
    "SweepError",
    "available_sweeps",
    "batch_frequencies",
    "calibrate",
    "candidate_sizes",
    "choose_k",
    "cpu_settings",
    "detect_launch",
    "device_for",
    "device_key",
    "fit_batch",
    "load_sweep",
    "main",
    "make_plan",
    "plan_eta",
    "calibrate_share",
    "model_rows",
    "phase_axes",
    "phase_bars",
    "plan_id",
    "run_sweep",
]

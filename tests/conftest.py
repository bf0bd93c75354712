"""Shared test helpers: run shapes small enough to check plumbing in seconds, in-process training,
CSV readers that close their files, and fault injection. Heavy modules are imported inside the
helpers, so pure tests (outcome, fourier, construct) never pay for Lightning's import."""

import csv
import os
import tempfile
from pathlib import Path

import pytest

import grok_lightning  # noqa: F401  (first: it sets MKL's reproducible mode before torch runs MKL)

import torch  # isort: skip  (after grok_lightning)

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Sweeps run in the test's own process unless a test asks for workers (monkeypatches reach them),
# and calibrate into a cache of this session, not the user's ~/.cache/grok_lightning.
os.environ.setdefault("GROK_SWEEP_WORKERS", "1")
os.environ.setdefault("GROK_CACHE_DIR", tempfile.mkdtemp(prefix="grok-cache-"))
torch.set_num_threads(1)  # tiny models: one thread is as fast and immune to a busy second core

# A modular-addition model that trains a few hundred steps in about a second: for tests of the
# plumbing (checkpoints, resume, loggers, divergence), not of what the model learns.
TINY = ["data.p=11", "model.d_embed=8", "model.n_neurons=4", "model.init=torch"]
# The same at p = 13 with 6 neurons: a few frequency groups for the explorer's panels and ensembles.
TINY_P13 = [*TINY, "data.p=13", "model.n_neurons=6"]


@pytest.fixture
def run_root(tmp_path):
    return tmp_path / "runs"


def short_run_args(run_root, *extra):
    """Overrides for a quick, quiet, CSV-only run under a temporary root."""
    return [f"run_root={run_root}", "logger=csv", "train.progress_bar=false", *extra]


def callbacks_off(*keep: str) -> list[str]:
    """Overrides that switch every analysis callback off, except those named in keep (e.g. trajectory)."""
    from grok_lightning import config as C

    return [s for s in C.callback_switches(False) if s.split(".")[1] not in keep]


def train_quietly(task: str, preset, overrides) -> Path:
    """Train in this process from C.load(task, preset, overrides), without console output; returns
    the run directory as a Path (train returns a path-like record of the run)."""
    from rich.console import Console

    from grok_lightning import config as C
    from grok_lightning.train import train

    torch.set_num_threads(1)  # a test before may have changed it (the ensemble's thread members)
    return Path(train(C.load(task, preset, list(overrides)), console=Console(quiet=True)))


def run_sweep_file(root, name: str, text: str) -> Path:
    """Write a sweep file under root and run it in this process; returns its out_dir."""
    from grok_lightning import sweep as S

    (Path(root) / f"{name}.yaml").write_text(text)
    out = Path(root) / "out"
    assert S.main([f"sweep={Path(root) / f'{name}.yaml'}", f"out_dir={out}"]) == 0
    return out


def only_run(root, task="modadd") -> Path:
    """The single run directory a test wrote under root/<task>."""
    (run_dir,) = list((Path(root) / task).iterdir())
    return run_dir


def read_csv_rows(path) -> list[dict]:
    """Every row of a CSV file as a dict of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def metrics_rows(run_dir) -> list[dict]:
    """Every row of a run's metrics.csv, the callbacks' rows included."""
    return read_csv_rows(Path(run_dir) / "metrics.csv")


def make_loss_nan_after(monkeypatch, updates: int):
    """Inject a fault: training losses turn NaN after `updates` updates. Returns the real loss."""
    from grok_lightning import objectives

    real_loss = objectives.Multiclass.loss
    calls = {"n": 0}

    def loss(self, logits, targets):
        value = real_loss(self, logits, targets)
        if logits.requires_grad:
            calls["n"] += 1
            if calls["n"] > updates:
                value = value * float("nan")
        return value

    monkeypatch.setattr(objectives.Multiclass, "loss", loss)
    return real_loss

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)  # tiny models: one thread is as fast and immune to a busy second core


@pytest.fixture
def run_root(tmp_path):
    return tmp_path / "runs"


def short_run_args(run_root, *extra):
    """Overrides for a quick, quiet, CSV-only run under a temporary root."""
    return [f"run_root={run_root}", "logger=csv", "train.progress_bar=false", *extra]


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

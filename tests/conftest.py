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

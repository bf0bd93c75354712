"""Fault cases: divergence, interruption (SIGINT / SIGTERM) and exact resume, W&B failing."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from grok_lightning import objectives
from grok_lightning.train import main
from tests.conftest import short_run_args

SMALL = ["model.d_embed=40", "model.init=torch", "train.log_every=10", "train.checkpoint_every=100"]


def read_rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def only_run(root, task="modadd"):
    (run_dir,) = list((root / task).iterdir())
    return run_dir


def test_divergence_stops_names_the_step_and_keeps_the_last_good_checkpoint(run_root, monkeypatch, capsys):
    calls = {"n": 0}
    real_loss = objectives.Multiclass.loss

    def loss_turning_nan_at_update_237(self, logits, targets):
        value = real_loss(self, logits, targets)
        if logits.requires_grad:
            calls["n"] += 1
            if calls["n"] > 237:
                value = value * float("nan")
        return value

    monkeypatch.setattr(objectives.Multiclass, "loss", loss_turning_nan_at_update_237)
    assert main(["task=modadd", *short_run_args(run_root, *SMALL, "train.max_steps=1000")]) == 1
    run_dir = only_run(run_root)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_at_step"] == 237
    assert "not finite at step 237" in capsys.readouterr().out
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step=100.ckpt", "step=200.ckpt"]  # nothing saved after the NaN


def _start(args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "grok_lightning.train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_resumes_to_the_same_metrics(tmp_path, signum):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    args = ["task=modadd", "logger=csv", "train.progress_bar=false", *SMALL, "train.max_steps=1200"]
    killed_root, straight_root = tmp_path / "killed", tmp_path / "straight"
    proc = _start([*args, f"run_root={killed_root}"], env)
    # Wait until training has started (metrics are being written), then stop at a random moment.
    deadline = time.time() + 120
    while time.time() < deadline and not list(killed_root.glob("modadd/*/checkpoints/step=*.ckpt")):
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.5))
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    run_dir = only_run(killed_root)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["steps_trained"] < 1200
    assert "Resume with" in out

    assert main([f"resume={run_dir}"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert main([*args, f"run_root={straight_root}"]) == 0
    resumed, straight = read_rows(run_dir), read_rows(only_run(straight_root))
    assert [r["step"] for r in resumed] == [r["step"] for r in straight]
    assert resumed == straight  # every logged value, to the last digit


def test_wandb_failure_falls_back_to_csv(run_root, monkeypatch, capsys):
    import lightning.pytorch.loggers as loggers

    class BrokenWandb:
        def __init__(self, *a, **k):
            raise RuntimeError("simulated W&B outage")

    monkeypatch.setattr(loggers, "WandbLogger", BrokenWandb)
    args = short_run_args(run_root, *SMALL, "train.max_steps=50")
    args[args.index("logger=csv")] = "logger=auto"
    assert main(["task=modadd", *args]) == 0
    out = capsys.readouterr().out
    assert out.count("W&B unavailable (simulated W&B outage)") == 1
    run_dir = only_run(run_root)
    assert (run_dir / "metrics.csv").is_file() and not (run_dir / "wandb").exists()


def test_wandb_offline_run_is_written_without_network(run_root, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(run_root / "no-netrc"))
    args = short_run_args(run_root, *SMALL, "train.max_steps=50")
    args[args.index("logger=csv")] = "logger=auto"
    assert main(["task=modadd", *args]) == 0
    run_dir = only_run(run_root)
    (offline,) = list((run_dir / "wandb").glob("offline-run-*"))
    assert list(offline.glob("*.wandb"))

"""The run record: train() returns it, grok_lightning.load_run reads it back from the files, and
GrokModule.load_from_checkpoint rebuilds the model of any checkpoint."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

import grok_lightning
from grok_lightning import config as C
from grok_lightning.module import METRICS, GrokModule
from grok_lightning.record import RunError
from grok_lightning.train import train

TINY = [
    "data.p=13",
    "model.d_embed=8",
    "model.n_neurons=6",
    "model.init=torch",
    "optim.lr=1e-2",
    "train.max_steps=200",
    "train.checkpoint_every=50",
    "train.keep_checkpoints=-1",
    "train.progress_bar=false",
    "logger=csv",
]
NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "load_a_run.ipynb"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    cfg = C.load("modadd", None, [*TINY, f"run_root={tmp_path_factory.mktemp('runs')}"])
    return train(cfg, console=Console(quiet=True))


def csv_columns(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["train/loss"]]
    return [int(r["step"]) for r in rows], {n: [float(r[n]) for r in rows] for n in METRICS}


def state_of(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_train_returns_a_path_like_record_of_what_it_wrote(trained):
    run_dir = Path(trained)
    assert os.fspath(trained) == str(run_dir) and (trained / "summary.json") == run_dir / "summary.json"
    assert trained.summary == json.loads((run_dir / "summary.json").read_text())
    steps, columns = csv_columns(run_dir / "metrics.csv")
    assert trained.history.steps.tolist() == steps
    for name in METRICS:  # the in-memory history is the one metrics.csv was written from
        np.testing.assert_allclose(trained.history[name], columns[name], rtol=1e-12)


def test_load_run_reads_history_summary_and_config(trained):
    run = grok_lightning.load_run(os.fspath(trained))
    steps, columns = csv_columns(trained / "metrics.csv")
    assert run.history.names == METRICS and run.history.steps.tolist() == steps
    for name in METRICS:
        assert run.history[name].tolist() == columns[name]
    assert run.summary == json.loads((trained / "summary.json").read_text())
    assert run.config.model.d_embed == 8 and run.config.task == "modadd"
    assert "fourier/in_gini" in run.analysis.names and len(run.analysis) > 0
    assert run.trajectory is not None and len(run.trajectory["steps"]) == run.summary["trajectory_frames"]
    with pytest.raises(KeyError, match="no metric 'val/acc'"):
        run.history["val/acc"]


def test_model_at_gives_each_checkpoint_s_weights(trained):
    run = grok_lightning.load_run(trained)
    assert list(run.checkpoints) == [50, 100, 150, 200]
    for step, path in run.checkpoints.items():
        module = run.model_at(step)
        saved = state_of(path)
        assert module.state_dict().keys() == saved.keys()
        for key, value in module.state_dict().items():
            assert torch.equal(value, saved[key]), (step, key)
        assert module.history_steps[-1] < step  # the metrics logged up to that checkpoint
    with pytest.raises(RunError, match="no checkpoint at step 75; saved steps: 50, 100, 150, 200"):
        run.model_at(75)


@pytest.mark.parametrize("name", ["last.ckpt", "step=100.ckpt"])
def test_load_from_checkpoint_restores_the_weights(trained, name):
    path = trained / "checkpoints" / name
    module = GrokModule.load_from_checkpoint(path)
    saved = state_of(path)
    assert all(torch.equal(v, saved[k]) for k, v in module.state_dict().items())
    measured = module.measure()  # data attached: the model can be measured at once
    if name == "last.ckpt":  # equals the metrics the run logged at its last step
        last = torch.tensor([trained.history[m][-1] for m in METRICS], dtype=torch.float64)
        torch.testing.assert_close(measured[0, 1:4], last[1:4], rtol=1e-6, atol=1e-9)


def test_a_checkpoint_without_its_config_takes_the_run_s(trained, tmp_path):
    """Checkpoints written before they carried their config: the run's config.yaml is read."""
    run_dir = tmp_path / "old"
    shutil.copytree(trained, run_dir)
    path = run_dir / "checkpoints" / "step=150.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    del ckpt["grok_config"]
    torch.save(ckpt, path)
    module = GrokModule.load_from_checkpoint(path)
    assert all(torch.equal(v, ckpt["state_dict"][k]) for k, v in module.state_dict().items())


def test_a_run_from_before_the_metric_rename_loads(trained, tmp_path):
    old = tmp_path / "old_run"
    shutil.copytree(trained, old)
    text = (old / "metrics.csv").read_text()
    header, rest = text.split("\n", 1)
    (old / "metrics.csv").write_text(header.replace("test/", "val/") + "\n" + rest)
    summary = json.loads((old / "summary.json").read_text())
    summary["final"] = {k.replace("test/", "val/"): v for k, v in summary["final"].items()}
    (old / "summary.json").write_text(json.dumps(summary))
    run = grok_lightning.load_run(old)
    assert run.history.names == METRICS
    np.testing.assert_array_equal(run.history["test/acc"], trained.history["test/acc"])
    assert run.summary["final"]["test/loss"] == trained.summary["final"]["test/loss"]


def test_a_run_without_summary_json_gets_its_verdicts_from_the_history(trained, tmp_path):
    bare = tmp_path / "killed"
    shutil.copytree(trained, bare, ignore=shutil.ignore_patterns("summary.json"))
    summary = grok_lightning.load_run(bare).summary
    assert summary["status"] is None
    for key in ("verdict", "verdict_text", "memorise_step", "outcome", "final_step"):
        assert summary[key] == trained.summary[key], key


@pytest.mark.parametrize("case", ["missing", "not_a_run", "bad_config"])
def test_a_directory_that_is_no_run_is_one_clear_error(tmp_path, case):
    target = tmp_path / "run"
    if case != "missing":
        target.mkdir()
    if case == "bad_config":
        (target / "config.yaml").write_text("task: nosuchtask\n")
    expected = {
        "missing": "no such directory",
        "not_a_run": "not a run directory",
        "bad_config": "unknown task 'nosuchtask'",
    }[case]
    with pytest.raises(RunError, match=expected) as err:
        grok_lightning.load_run(target)
    assert len(str(err.value).splitlines()) == 1


def test_import_grok_lightning_stays_light():
    code = "import sys, grok_lightning; print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_notebook_runs(tmp_path):
    """notebooks/load_a_run.ipynb: its code cells, in order, as one script (no jupyter needed)."""
    notebook = json.loads(NOTEBOOK.read_text())
    assert notebook["nbformat"] == 4
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    script = tmp_path / "notebook.py"
    script.write_text("\n\n".join("".join(c["source"]) for c in code) + "\n")
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "GROK_RUN_ROOT": str(tmp_path / "runs"),
        "WANDB_MODE": "offline",
    }
    env.pop("GROK_RUN", None)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "verdict:" in proc.stdout
    (run_dir,) = (tmp_path / "runs" / "modadd").iterdir()
    first = min(int(p.stem.split("=")[1]) for p in (run_dir / "checkpoints").glob("step=*.ckpt"))
    assert f"model at step {first}: train acc" in proc.stdout

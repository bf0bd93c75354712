"""What a new user meets first: a build and a first run whose output is the project's own (no
setuptools walls, no hardware banner, no third-party warnings), sweep panels whose titles read, a
run that loads at every step its explorer page shows, and sweep totals of this sweep alone."""

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rich.console import Console

from tests.conftest import TINY, callbacks_off, only_run, short_run_args, train_quietly
from tests.test_install import ROOT, not_sources

# Lines that were a first run's or a build's until they were silenced, and any warning at all.
NOISE = (
    "would be ignored",  # setuptools: configs/ folders taken for packages
    "GPU available",  # Lightning's hardware banner
    "TPU available",
    "LOCAL_RANK",
    "NumPy array is not writable",  # torch, from a jax draw
    "ended before the epoch ended",  # Lightning on a (by design) mid-epoch resume
    "litlogger",
    "`Trainer.fit` stopped",  # Lightning at max_steps (a run without an adaptive budget)
    "site-packages",  # any third-party warning names its file
)
A_WARNING = re.compile(r"\b\w*Warning\b")


def noise_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(n in line for n in NOISE) or A_WARNING.search(line)]


def _train(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"} | {"WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "grok_lightning.train", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_a_first_run_and_its_resume_print_only_the_projects_lines(run_root):
    args = ["task=modadd", *TINY, f"run_root={run_root}", "logger=csv", "train.max_steps=200"]
    first = _train(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    # a fixed budget on resume: Lightning's own stop at max_steps would be a line of its own
    resumed = _train(f"resume={only_run(run_root)}", "train.max_steps=300", "train.step_cap=0")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for done in (first, resumed):
        out = done.stdout + done.stderr
        assert noise_in(out) == []
        for line in ("run directory: ", "model: ", "verdict: ", "explorer -> "):
            assert line in out, line
    assert "step 200 / 200" in first.stdout and "step 300 / 300" in resumed.stdout


def test_drawn_weights_load_without_a_warning():
    from grok_lightning.model import FactoredMLP, FactoredMLPConfig

    model = FactoredMLP(FactoredMLPConfig(d_embed=4, n_neurons=3), seeds=[0], p=5)
    arrays = {name: np.ones(tuple(w.shape[1:]), np.float32) for name, w in model.weights.items()}
    for value in arrays.values():
        value.flags.writeable = False  # as np.asarray gives a jax draw
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.load_model_params(0, arrays)
    assert all(torch.equal(w[0], torch.ones_like(w[0])) for w in model.weights.values())


# setuptools' note on every editable install of a layout with package_dir mappings (callbacks/ and
# configs/ go into the package): "Editable installation. Please be careful with folders in your
# working directory...". Information only; `make setup` installs with this filter.
EDITABLE_NOTE = "ignore:Editable installation"


@pytest.mark.parametrize("hook", ["build_wheel", "build_editable"])  # pip wheel / pip install -e
def test_builds_print_no_setuptools_warnings(hook, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=not_sources)
    code = f"from setuptools import build_meta; print(build_meta.{hook}({str(tmp_path / 'out')!r}))"
    env = os.environ | {"PYTHONWARNINGS": EDITABLE_NOTE}
    done = subprocess.run([sys.executable, "-c", code], cwd=source, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert noise_in(done.stdout + done.stderr) == []
    assert (tmp_path / "out" / done.stdout.split()[-1]).is_file()  # the hook names the wheel it built


# ---------------------------------------------------------------------------------------- sweep panels


def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("facets", [2, 3])  # 4 panels in a row; 8 panels in two rows
def test_sweep_panel_titles_are_whole_and_apart(facets):
    from grok_lightning.phase_diagram import phase_diagram

    keys = ["optim.lr", "model.collapsed_hidden", "model.collapsed_out"][-facets:]
    rows = [
        {"optim.weight_decay": wd, "optim.lr": lr, "model.collapsed_hidden": h, "model.collapsed_out": o}
        | {"outcome": "fail"}
        for wd in (0.1, 1.0)
        for lr in (1e-3, 1e-2)
        for h in (False, True)
        for o in (False, True)
    ]
    fig = phase_diagram(rows, "optim.weight_decay", "optim.lr", keys, title="modadd_architecture_slice")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.images]
    titles = [ax.title.get_text() for ax in panels]
    assert len(panels) == 2**facets and len(set(titles)) == len(titles)
    for title in titles:  # the flag combination written in full, one flag a line
        assert re.fullmatch(r"(lr=[\d.]+\n)?collapsed_hidden=(True|False)\ncollapsed_out=(True|False)", title)
    inside = fig.bbox
    texts = [fig._suptitle, *fig.legends]
    texts += [t for ax in panels for t in (ax.xaxis.label, *ax.get_xticklabels())]
    for i, ax in enumerate(panels):
        box = ax.title.get_window_extent(renderer)
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and box.y1 <= inside.y1, titles[i]
        others = [p.title for p in panels if p is not ax] + texts
        hits = [t for t in others if t.get_visible() and _boxes_overlap(box, t.get_window_extent(renderer))]
        assert hits == [], (titles[i], [getattr(t, "get_text", lambda: "legend")() for t in hits])


# ---------------------------------------------------------------------------------------- model_at


RUNS = {
    "modadd, untied": ("modadd", [*TINY, "model.embed=untied", "train.max_steps=200"]),
    "parity": (
        "parity",
        ["data.n_bits=8", "data.k=2", "data.train_size=64", "data.test_size=32", "model.n_neurons=8"]
        + ["train.max_steps=200"],
    ),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_model_at_works_at_every_step_the_explorer_shows(name, tmp_path):
    import grok_lightning
    from grok_lightning.record import RunError

    task, overrides = RUNS[name]
    keep = ["train.keep_checkpoints=3"]  # the default keeps 1 step file; 3 to compare at 3 steps
    run_dir = train_quietly(
        task, None, [*overrides, *short_run_args(tmp_path), *callbacks_off("trajectory"), *keep]
    )
    run = grok_lightning.load_run(run_dir)
    frames = run.trajectory["steps"].tolist()  # the explorer's slider (explorer/run_page.py)
    assert len(frames) >= 10 and len(run.checkpoints) == 3
    compared = 0
    for step in frames:
        module = run.model_at(step)
        assert torch.isfinite(module.measure()).all()
        if step + 1 in run.checkpoints:  # frame s is after update s: the checkpoint of s + 1 updates
            saved = run.model_at(step + 1)
            inputs = saved.data["test"][0]
            with torch.no_grad():
                got, expected = module.model(*inputs), saved.model(*inputs)
            torch.testing.assert_close(got.double(), expected.double(), rtol=1e-5, atol=1e-5)
            compared += 1
    assert compared == 3
    gap = frames[1] + 1  # between two frames, and no checkpoint there
    with pytest.raises(
        RunError,
        match=rf"no checkpoint at step {gap};.* nearest steps with weights: "
        rf"{frames[1]} and {frames[2]}$",
    ):
        run.model_at(gap)


def test_history_frame_needs_no_pandas(monkeypatch):
    from grok_lightning.record import History

    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    history = History(np.array([0, 10]), ("train/loss", "test/acc"), np.array([[1.0, 0.1], [0.5, np.nan]]))
    frame = history.frame()
    assert frame.dtype.names == ("step", "train/loss", "test/acc")
    assert frame["step"].tolist() == [0, 10] and frame[frame["step"] >= 10]["train/loss"].tolist() == [0.5]
    assert np.isnan(frame["test/acc"][1])


def test_notebook_runs_are_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    probe = subprocess.run(["git", "check-ignore", "-q", "notebooks/runs/modadd/x/metrics.csv"], cwd=ROOT)
    assert probe.returncode == 0


# ---------------------------------------------------------------------------------------- sweep totals


def test_sweep_wall_time_counts_only_this_sweeps_batches(tmp_path):
    """An earlier, different sweep in the same out_dir: its batch is not this sweep's time."""
    from grok_lightning import runs
    from grok_lightning.sweep.run import _print_wall_time

    def batch(name, wall_s, *model_ids):
        rows = [{"model_id": m, "batch": name} for m in model_ids]
        runs.write_json(
            tmp_path / "batches" / f"{name}.json", {"batch": name, "wall_s": wall_s, "rows": rows}
        )

    (tmp_path / "batches").mkdir()
    batch("earlier-sweep", 100.0, "x1", "x2")
    batch("g000-a", 2.0, "m1", "m2")
    batch("g001-b", 3.0, "m3")
    sweep = SimpleNamespace(out_dir=tmp_path, models=[SimpleNamespace(id=m) for m in ("m1", "m2", "m3")])
    console = Console(record=True, width=200)
    _print_wall_time(sweep, 7.0, None, 6.0, console)
    assert "wall time: 5.0 s training over 2 batches" in console.export_text()
    assert json.loads((tmp_path / "wall_time.json").read_text())["batches"] == 2

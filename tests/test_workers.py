"""Local workers (grok_lightning.sweep.workers): a sweep started without a launcher splits its
batches over several processes through the torchrun variables, each model trained exactly once,
with results identical to one process; the calibration is cached per machine."""

import csv

import numpy as np
import pytest
import torch
from rich.console import Console

from grok_lightning import config as C
from grok_lightning import histories
from grok_lightning import sweep as S
from grok_lightning.sweep import calibration as SC
from grok_lightning.sweep import workers as W
from tests.test_sweep import MINI, assert_every_model_once

PLACEMENT = ("rank", "batch", "group")  # where a model was trained, not what it computed


def _results(out):
    with open(out / "results.csv") as f:
        return {r["model_id"]: {k: v for k, v in r.items() if k not in PLACEMENT} for r in csv.DictReader(f)}


def test_two_workers_train_every_model_once_with_the_results_of_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("GROK_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "mini.yaml"
    path.write_text(MINI.format(steps=200))
    args = [f"sweep={path}", "max_models_per_group=4"]  # 3 batches of 2 groups: both workers busy
    assert S.main([*args, "workers=2", f"out_dir={tmp_path / 'two'}"]) == 0
    assert S.main([*args, "workers=1", f"out_dir={tmp_path / 'one'}"]) == 0
    with open(tmp_path / "two" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert_every_model_once(rows)
    assert {r["rank"] for r in rows} <= {"0", "1"}
    assert _results(tmp_path / "two") == _results(tmp_path / "one")
    two, one = histories.load(tmp_path / "two"), histories.load(tmp_path / "one")
    assert set(two) == set(one)
    for model_id, entry in one.items():
        assert set(two[model_id]) == set(entry)
        for name, series in entry.items():
            np.testing.assert_array_equal(two[model_id][name], series, err_msg=f"{model_id} {name}")
    assert (tmp_path / "cache" / "calibration.json").is_file()


def test_worker_count_follows_cores_threads_and_overrides(tmp_path, monkeypatch):
    path = tmp_path / "mini.yaml"
    path.write_text(MINI.format(steps=100))
    monkeypatch.delenv(W.ENV_DEFAULT, raising=False)
    monkeypatch.setattr(W, "usable_cores", lambda: 8)
    cpu = torch.device("cpu")

    def count(*extra, models=12, device=cpu):
        sweep = S.load_sweep([f"sweep={path}", *extra])
        return W.worker_count(sweep.scfg, sweep.base_cfg, device, models)

    assert count() == 8  # one per core at one thread each
    assert count("train.cpu_threads=2") == 4
    assert count("train.cpu_threads=0") == 1  # torch's own threads already use every core
    assert count(models=3) == 3  # never more processes than models
    assert count("workers=2") == 2 and count("world_size=3") == 3
    assert count(device=torch.device("cuda", 0)) == 1  # one process per accelerator: a launcher's job
    monkeypatch.setenv(W.ENV_DEFAULT, "1")
    assert count() == 1 and count("workers=5") == 5
    monkeypatch.setenv(W.ENV_DEFAULT, "many")
    with pytest.raises(C.ConfigError, match="GROK_SWEEP_WORKERS"):
        count()
    with pytest.raises(C.ConfigError, match="workers=2 and world_size=3 disagree"):
        count("workers=2", "world_size=3")


def test_a_second_sweep_with_the_same_shapes_calibrates_nothing(tmp_path, monkeypatch):
    """The machine cache is keyed by the group's shape, not its length or out_dir."""
    monkeypatch.setenv("GROK_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "mini.yaml"
    path.write_text(MINI.format(steps=100))
    calls = []

    def measure(cfg, models, device, cal):
        calls.append(len(models))
        return 1.0 / len(models)

    monkeypatch.setattr(SC, "measure_ms_per_model_step", measure)
    launch, cpu = S.Launch("none", 0, 1, 0), torch.device("cpu")
    for out, steps in (("a", 100), ("b", 5000)):
        sweep = S.load_sweep([f"sweep={path}", f"out_dir={tmp_path / out}", f"train.max_steps={steps}"])
        S.calibrate_share(sweep, cpu, launch, Console(quiet=True), all_groups=True)
        if out == "a":
            first = len(calls)
            assert first > 0
    assert len(calls) == first  # sweep b reused every measurement
    assert (tmp_path / "b" / "calibration.json").is_file()  # and records what its plan used
    plan = S.make_plan(sweep, cpu, launch)
    assert all(b["est_s"] is not None for b in plan) and S.plan_eta(plan, 1) == pytest.approx(
        sum(b["est_s"] for b in plan)
    )

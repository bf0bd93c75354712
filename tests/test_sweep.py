"""Sweeps: real mini-sweeps (a few groups, a few hundred steps), restarts, a 2-process torchrun
split, launcher/config mismatches and bad input."""

import csv
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from grok_lightning import runs
from grok_lightning import sweep as S
from grok_lightning.module import METRICS
from grok_lightning.outcome import OUTCOMES
from grok_lightning.sweep import batch as SB
from grok_lightning.sweep import calibration as SC
from grok_lightning.sweep import progress as SP
from grok_lightning.sweep import run as SR
from grok_lightning.sweep.sync import read_json

MINI = """\
task: modadd
base:
  data: {{p: 11, train_fraction: 0.5}}
  model: {{d_embed: 8, init: torch}}
  optim: {{lr: 1.0e-2}}
  train: {{max_steps: {steps}}}
  logger: csv
grid:
  model.n_neurons: [4, 8]
  optim.weight_decay: [0.1, 1.0]
seeds: 3
calibration: {{steps: 20, warmup_steps: 10, repeats: 1}}
"""


@pytest.fixture
def mini(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text(MINI.format(steps=100))
    return path


def read_results(out):
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def assert_every_model_once(rows, seeds=3):
    ids = [r["model_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 2 * 2 * seeds
    points = {(r["model.n_neurons"], r["optim.weight_decay"], r["seed"]) for r in rows}
    assert points == {
        (str(n), str(wd), str(s)) for n, wd, s in itertools.product([4, 8], [0.1, 1.0], range(seeds))
    }
    assert {r["outcome"] for r in rows} <= set(OUTCOMES)


def test_mini_sweep_table_has_every_model_once(mini, tmp_path, capsys):
    out = tmp_path / "out"
    assert S.main([f"sweep={mini}", f"out_dir={out}"]) == 0
    rows = read_results(out)
    assert_every_model_once(rows)
    assert {r["steps"] for r in rows} == {"100"}
    assert {r["group"] for r in rows} and len({r["group"] for r in rows}) == 2  # n_neurons splits groups
    for name in ("phase_diagram.png", "sweep.yaml", "calibration.json"):
        assert (out / name).is_file(), name
    assert "grok" in capsys.readouterr().out  # the rich outcome table


def test_rerun_skips_finished_batches(mini, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert (
        S.main([f"sweep={mini}", f"out_dir={out}", "calibration.enabled=false", "max_models_per_group=3"])
        == 0
    )
    before = {p.name: p.stat().st_mtime_ns for p in (out / "batches").iterdir()}
    assert len(before) == 4
    monkeypatch.setattr(SR, "fit_batch", lambda *a, **k: pytest.fail("a finished batch was trained again"))
    (out / "results.csv").unlink()
    assert (
        S.main([f"sweep={mini}", f"out_dir={out}", "calibration.enabled=false", "max_models_per_group=3"])
        == 0
    )
    assert {p.name: p.stat().st_mtime_ns for p in (out / "batches").iterdir()} == before
    assert_every_model_once(read_results(out))


def test_interrupted_sweep_finishes_the_rest(mini, tmp_path, monkeypatch):
    out = tmp_path / "out"
    args = [f"sweep={mini}", f"out_dir={out}", "calibration.enabled=false", "max_models_per_group=3"]
    real_fit, calls = S.fit_batch, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fit(*a, **k)

    monkeypatch.setattr(SR, "fit_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        S.main(args)
    assert not (out / "results.csv").exists()
    (first,) = list((out / "batches").iterdir())
    stamp = first.stat().st_mtime_ns

    calls.clear()
    monkeypatch.setattr(SR, "fit_batch", lambda *a, **k: (calls.append(1), real_fit(*a, **k))[1])
    assert S.main(args) == 0
    assert len(calls) == 3 and first.stat().st_mtime_ns == stamp
    assert_every_model_once(read_results(out))
    # wall time adds up over the invocations: every batch file's, the killed run's first one included
    walls = [read_json(p)["wall_s"] for p in (out / "batches").glob("*.json")]
    wall = read_json(out / "wall_time.json")
    assert wall["batches"] == 4 and wall["wall_time_s"] == round(sum(walls), 3)
    assert wall["wall_time_s"] > read_json(first)["wall_s"] > 0 and wall["this_invocation_s"] > 0


def _parity_cfg(extra=()):
    from grok_lightning import config as C

    return C.load(
        "parity",
        None,
        [
            "data.train_size=200",
            "data.test_size=200",
            "model.n_neurons=16",
            "optim.regularization=l2",
            "optim.lr=3e-3",
            "train.max_steps=150",
            *extra,
        ],
    )


def _models(pairs):
    return [S.Model(id=f"m{i}", point=0, seed=s, lr=3e-3, weight_decay=wd) for i, (s, wd) in enumerate(pairs)]


def test_model_alone_and_in_a_batch_of_45_match():
    cfg = _parity_cfg()
    cpu = torch.device("cpu")
    batch = _models(itertools.product(range(9), [0.01, 0.03, 0.1, 0.3, 1.0]))
    k = 22  # seed 4, weight decay 0.1, in the middle of the batch
    alone, _ = S.fit_batch(cfg, batch[k : k + 1], cpu)
    together, _ = S.fit_batch(cfg, batch, cpu)
    steps_a, hist_a = alone.history_tensor()
    steps_b, hist_b = together.history_tensor()
    assert steps_a == steps_b
    torch.testing.assert_close(hist_b[:, k], hist_a[:, 0], rtol=1e-4, atol=1e-6)
    row_a = S.model_rows(cfg, alone, batch[k : k + 1])[0]
    row_b = S.model_rows(cfg, together, batch)[k]
    assert row_a["outcome"] == row_b["outcome"] and row_a["memorise_step"] == row_b["memorise_step"]


def test_a_diverged_model_is_marked_and_the_others_go_on(monkeypatch):
    cfg = _parity_cfg(["train.max_steps=50"])
    cpu = torch.device("cpu")
    models = _models([(0, 0.1), (1, 0.1), (2, 0.1)])
    clean, _ = S.fit_batch(cfg, models, cpu)
    real_build = SB.build_module

    def poisoned(*a, **k):
        dm, module = real_build(*a, **k)
        with torch.no_grad():
            module.model.W_input[1, 0, 0] = float("nan")
        return dm, module

    monkeypatch.setattr(SB, "build_module", poisoned)
    dirty, _ = S.fit_batch(cfg, models, cpu)
    rows = S.model_rows(cfg, dirty, models)
    assert [r["diverged"] for r in rows] == [False, True, False]
    assert rows[1]["outcome"] == "fail"
    _, h_clean = clean.history_tensor()
    _, h_dirty = dirty.history_tensor()
    torch.testing.assert_close(h_dirty[:, [0, 2]], h_clean[:, [0, 2]])


def test_torchrun_two_processes_share_the_batches(mini, tmp_path):
    out = tmp_path / "out"
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "grok_lightning.sweep"]
        + [f"sweep={mini}", f"out_dir={out}", "world_size=2", "calibration.enabled=false"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_results(out)
    assert_every_model_once(rows)
    # each rank trains its own share first, then takes unstarted batches of the other (one may
    # start late on a busy machine and find its share taken)
    assert {r["rank"] for r in rows} <= {"0", "1"} and "[rank 1/2]" in proc.stdout + proc.stderr


def test_launcher_config_mismatch_is_an_error(mini, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert S.main([f"sweep={mini}", f"out_dir={out}", "world_size=4", "workers=2"]) == 2
    assert "workers=2 and world_size=4 disagree" in capsys.readouterr().err
    # torchrun's environment, as Lightning's TorchElasticEnvironment reads it
    for key, value in {"TORCHELASTIC_RUN_ID": "t", "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    assert S.main([f"sweep={mini}", f"out_dir={out}", "world_size=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 processes by torchelastic" in err
    assert S.detect_launch(0) == S.Launch("torchelastic", 1, 2, 1)
    for key in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key)
    # SLURM that claims 2 tasks but gives this process rank 5
    slurm = {
        "SLURM_NTASKS": "2",
        "SLURM_PROCID": "5",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_JOB_NAME": "s",
    }
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    assert S.main([f"sweep={mini}", f"out_dir={out}"]) == 2  # Lightning refuses --ntasks without per-node
    assert "slurm launcher" in capsys.readouterr().err
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2")
    assert S.main([f"sweep={mini}", f"out_dir={out}"]) == 2
    assert "rank 5 of world size 2" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["grid.model.nope=[1]"], "grid.model.nope"),
        (["grid.model.n_neurons=[]"], "is empty"),
        (["grid.optim.weight_decay=[-1]"], "optim.weight_decay=-1"),
        (["grid.optim.weight_decay=[0.1,0.1]"], "repeats"),
        (["seeds=0"], "seeds=0"),
        (["seeds=[1,1]"], "repeats"),
        (["train.max_steps=0"], "train.max_steps"),
        (["max_models_per_group=-1"], "max_models_per_group"),
        (["phase_diagram.x=data.p"], "phase_diagram.x"),
        (["not_a_pair"], "key=value"),
        (["bogus_top_level=1"], "bogus_top_level"),
    ],
)
def test_bad_input_is_one_error_line_and_nothing_written(mini, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert S.main([f"sweep={mini}", f"out_dir={out}", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_unknown_sweep_and_short_grid_names(capsys):
    assert S.main(["sweep=no_such_sweep"]) == 2
    assert "available sweeps" in capsys.readouterr().err
    sweep = S.load_sweep(["sweep=parity_phase", "seeds=2", "grid.n_neurons=[16]", "grid.train_size=[750]"])
    assert sweep.grid["model.n_neurons"] == [16] and sweep.grid["data.train_size"] == [750]
    assert len(sweep.models) == 5 * 2 and len(sweep.groups) == 1  # weight decay and seed share a batch


def test_calibration_picks_the_fastest_measured_size(monkeypatch, mini):
    sweep = S.load_sweep([f"sweep={mini}", "seeds=16"])
    group = sweep.groups[0]
    cost = {2: 0.6, 4: 0.5, 8: 0.9, 16: 2.0, 32: 0.1}  # worse past 4, then best: search them all
    seen = []

    def measure(cfg, models, *a):  # K models and the padding copy
        seen.append(len(models) - 1)
        return cost[len(models) - 1]

    monkeypatch.setattr(SC, "measure_ms_per_model_step", measure)
    entry = S.calibrate(group, 32, torch.device("cpu"), sweep.scfg.calibration, Console(quiet=True))
    assert entry["K"] == 32 and seen == [2, 4, 8, 16, 32]  # K=1 would train a padded pair
    assert S.candidate_sizes(45) == [1, 2, 4, 8, 16, 32, 45]


def test_plan_gives_every_rank_work_and_every_model_once(mini, tmp_path):
    sweep = S.load_sweep([f"sweep={mini}", f"out_dir={tmp_path}", "calibration.enabled=false"])
    plan = S.make_plan(sweep, torch.device("cpu"), S.Launch("none", 0, 8, 0))
    assert len(plan) >= 8
    ids = [i for b in plan for i in b["models"]]
    assert sorted(ids) == sorted(m.id for m in sweep.models)
    for b in plan:  # a batch never mixes groups
        assert {sweep.groups[b["group"]].key} == {
            next(g.key for g in sweep.groups if m in g.models) for m in sweep.models if m.id in b["models"]
        }


def test_phase_diagram_draws_a_panel_per_facet():
    from grok_lightning.phase_diagram import phase_diagram

    rows = [
        {"a": a, "b": b, "c": c, "outcome": o, "diverged": o == "fail" and a == 1}
        for a, b, c, o in itertools.product([1, 2], [3, 4, 5], ["x", "y"], OUTCOMES)
    ]
    fig = phase_diagram(rows, "a", "b", ["c"], title="t")
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 2 and [ax.get_title() for ax in drawn] == ["c=x", "c=y"]
    assert [t.get_text() for t in drawn[0].get_xticklabels()] == ["1", "2"]


def test_rank_zero_trains_the_batches_of_a_rank_that_failed(mini, tmp_path, monkeypatch):
    sweep = S.load_sweep(
        [f"sweep={mini}", f"out_dir={tmp_path}", "calibration.enabled=false", "max_models_per_group=3"]
    )
    cpu = torch.device("cpu")
    plan_path = tmp_path / "plans" / f"{S.plan_id(sweep, cpu, 2)}.json"
    plan_path.parent.mkdir(parents=True)
    (tmp_path / "batches").mkdir()
    runs.write_json(plan_path, {"batches": S.make_plan(sweep, cpu, S.Launch("none", 0, 2, 0))})
    real_fit = S.fit_batch

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(SR, "fit_batch", boom)
    with pytest.raises(RuntimeError):
        S.run_sweep(sweep, S.Launch("torchelastic", 1, 2, 1), Console(quiet=True))
    monkeypatch.setattr(SR, "fit_batch", real_fit)
    console = Console(record=True, width=200)
    # rank 0 trained the failed rank's batches too, and says why
    S.run_sweep(sweep, S.Launch("torchelastic", 0, 2, 0), console)
    assert_every_model_once(read_results(tmp_path))
    assert (
        "rank 1 failed: RuntimeError: boom; its batches were trained by the other ranks"
        in console.export_text()
    )


def test_stored_histories_and_frequencies_equal_the_model_trained_alone(mini, tmp_path):
    from grok_lightning import histories

    out = tmp_path / "out"
    assert S.main([f"sweep={mini}", f"out_dir={out}", "calibration.enabled=false"]) == 0
    rows = {r["model_id"]: r for r in read_results(out)}
    stored = histories.load(out)
    assert set(stored) == set(rows)
    sweep = S.load_sweep([f"sweep={mini}", f"out_dir={out}"])
    model = next(m for m in sweep.models if m.seed == 2 and m.weight_decay == 1.0)
    group = next(g for g in sweep.groups if model.id in {m.id for m in g.models})
    alone, _ = S.fit_batch(group.cfg, [model], torch.device("cpu"))
    steps, values = alone.history_tensor()
    mine = stored[model.id]
    assert mine["steps"].tolist() == steps
    for i, name in enumerate(METRICS):
        torch.testing.assert_close(
            torch.from_numpy(mine[name]).double(), values[:, 0, i], rtol=1e-4, atol=1e-6
        )
    freqs, keys = histories.learned_frequencies(alone.model.W_input)
    assert mine["neuron_frequency"].tolist() == freqs[0].tolist()
    assert rows[model.id]["key_frequencies"] == " ".join(map(str, keys[0]))
    assert int(rows[model.id]["n_key_frequencies"]) == len(keys[0])


PARITY = """\
task: parity
base:
  data: {train_size: 200, test_size: 200}
  model: {n_neurons: 16}
  optim: {regularization: l2, lr: 3.0e-3}
  train: {max_steps: 150}
  logger: csv
grid:
  optim.weight_decay: [0.1, 1.0]
seeds: 2
"""


def test_a_models_row_does_not_depend_on_its_batch(tmp_path):
    """Alone (K=1, trained as a padded pair), in batches of 2, or all 4 together (no calibration):
    every model's results.csv row is the same text, float reprs included. The fault: BatchedAdam's
    scalar path for uniform lr / decay rounded otherwise than its vector path, and torch.bmm over
    one matrix rounds otherwise than over several."""
    path = tmp_path / "parity.yaml"
    path.write_text(PARITY)
    tables = []
    for name, args in (("k1", ["max_models_per_group=1"]), ("k2", ["max_models_per_group=2"]), ("k4", [])):
        out = tmp_path / name
        assert S.main([f"sweep={path}", f"out_dir={out}", "calibration.enabled=false", *args]) == 0
        rows = read_results(out)
        assert len({r["batch"] for r in rows}) == {"k1": 4, "k2": 2, "k4": 1}[name]
        tables.append({r["model_id"]: {k: v for k, v in r.items() if k != "batch"} for r in rows})
    assert tables[0] == tables[1] == tables[2]
    assert len({r["min_train_loss"] for r in tables[0].values()}) == 4  # four different models


def test_a_batch_another_process_holds_is_left_to_it(mini, tmp_path, monkeypatch, capsys):
    """A second sweep into the same out_dir skips the batch the first one holds the lock of; when
    that process dies (its lock frees, no result), the second trains the batch itself, last."""
    import fcntl

    out = tmp_path / "out"
    args = [f"sweep={mini}", f"out_dir={out}", "calibration.enabled=false", "max_models_per_group=3"]
    sweep = S.load_sweep(args)
    plan = S.make_plan(sweep, torch.device("cpu"), S.Launch("none", 0, 1, 0))
    held = plan[1]
    lock_path = out / "locks" / f"{held['id']}.lock"
    lock_path.parent.mkdir(parents=True)
    other = open(lock_path, "a")  # "another process": flock conflicts between open files
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    real_fit, order = S.fit_batch, []

    def fit(cfg, models, *a, **k):
        order.append(sorted({m.id for m in models}))
        if len(order) == len(plan) - 1:
            other.close()  # the other process dies before it writes a result
        return real_fit(cfg, models, *a, **k)

    monkeypatch.setattr(SR, "fit_batch", fit)
    assert S.main(args) == 0
    assert sorted(map(tuple, order)) == sorted(tuple(sorted(b["models"])) for b in plan)  # each once
    assert order[-1] == sorted(held["models"])
    assert capsys.readouterr().out.count("being trained by another process") == 1
    assert_every_model_once(read_results(out))


def test_two_identical_sweeps_train_every_batch_once(mini, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "grok_lightning.sweep", f"sweep={mini}", f"out_dir={out}"]
    cmd += ["calibration.enabled=false", "max_models_per_group=3", "train.max_steps=300"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)]
    procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outputs]
    trained = sum(o.count(" models x 300 steps in ") for o, _ in outputs)
    assert trained == 4  # the plan's 4 batches, each by one of the two processes
    assert_every_model_once(read_results(out))


def test_progress_updates_at_the_logging_cadence():
    from grok_lightning import config as C

    cfg = _parity_cfg(["train.max_steps=100", "train.log_every=20"])
    updates = []
    S.fit_batch(cfg, _models([(0, 0.1), (1, 0.1)]), torch.device("cpu"), [SP._Progress(updates.append, 20)])
    assert C.log_every(cfg) == 20
    assert updates == [20, 40, 60, 80, 100, None]  # not per step (10 calls of 10 steps), closed at the end


def test_keys_added_at_their_off_value_keep_the_model_ids_of_earlier_sweeps(tmp_path):
    """data.op, the Grokfast and warmup keys, model.kind and model.transformer came after these
    sweeps were first run: at their off values they leave every model id as it was, so an earlier
    sweep's out_dir resumes instead of being refused (ids taken before those keys existed)."""
    from grok_lightning.sweep.spec import load_sweep

    for name, first, last in [
        ("modadd_seeds", "c06593bf5ac9", "06747c9e62b4"),
        ("modadd_architecture_slice", "468871addaeb", "3ebc680a8819"),
        ("parity_phase", "078d904ebde1", "5267e0d8eb58"),
    ]:
        sweep = load_sweep([f"sweep={name}", f"out_dir={tmp_path / name}"])
        assert (sweep.models[0].id, sweep.models[-1].id) == (first, last), name

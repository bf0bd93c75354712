"""Fault cases: divergence, interruption (SIGINT / SIGTERM) and exact resume, W&B failing."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from grok_lightning import config as C
from grok_lightning import runs
from grok_lightning.train import main
from tests.conftest import TINY, callbacks_off, make_loss_nan_after, metrics_rows, only_run, short_run_args

# The tiny model, logged every 10 steps, checkpointed every 50, no analysis callbacks: these tests
# check what a run writes and resumes, not what it learns.
TINY_RUN = [*TINY, "train.log_every=10", "train.checkpoint_every=50", *callbacks_off()]


def test_divergence_stops_names_the_step_and_keeps_the_last_good_checkpoint(run_root, monkeypatch, capsys):
    make_loss_nan_after(monkeypatch, 237)
    args = [*TINY, "train.log_every=10", "train.checkpoint_every=100", "train.max_steps=1000"]
    assert main(["task=modadd", *short_run_args(run_root, *args)]) == 1  # analysis callbacks on
    run_dir = only_run(run_root)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_at_step"] == 237
    assert "not finite at step 237" in capsys.readouterr().out
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step=200.ckpt"]  # nothing saved after the NaN (1 step file kept)
    assert os.path.samefile(run_dir / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "step=200.ckpt")


def _start(args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "grok_lightning.train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


# Tiny and without figures, so the subprocess spends its time training: a signal lands mid-run.
SIGNAL_ARGS = ["task=modadd", "logger=csv", "train.progress_bar=false", *TINY_RUN, "train.max_steps=2000"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The uninterrupted run every interrupted one must end up equal to."""
    root = tmp_path_factory.mktemp("straight")
    assert main([*SIGNAL_ARGS, f"run_root={root}"]) == 0
    return only_run(root)


def test_interrupted_runs_resume_to_the_same_metrics(tmp_path, straight_run):
    """SIGINT, SIGTERM and kill -9 at a random moment (three processes at once, to share their start
    up), then resume: metrics.csv row for row and the final weights bit for bit as uninterrupted."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    signums = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
    procs = {s: _start([*SIGNAL_ARGS, f"run_root={tmp_path / s.name}"], env) for s in signums}
    for signum, proc in procs.items():
        # Wait until training has started (a checkpoint exists), then stop at a random moment.
        deadline = time.time() + 120
        pattern = "modadd/*/checkpoints/step=*"
        while time.time() < deadline and not list((tmp_path / signum.name).glob(pattern)):
            time.sleep(0.05)
        time.sleep(random.uniform(0.0, 0.5))
        proc.send_signal(signum)
    for signum, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        run_dir = only_run(tmp_path / signum.name)
        if signum == signal.SIGKILL:  # no handler runs: only what was on disk before counts
            assert proc.returncode == -signal.SIGKILL and not (run_dir / "summary.json").exists()
        else:
            assert proc.returncode == 130, out[-2000:]
            summary = json.loads((run_dir / "summary.json").read_text())
            assert summary["status"] == "interrupted" and 0 < summary["steps_trained"] < 2000
            assert "Resume with" in out

        assert main([f"resume={run_dir}"]) == 0
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
        resumed, straight = metrics_rows(run_dir), metrics_rows(straight_run)
        assert [r["step"] for r in resumed] == [r["step"] for r in straight], signum.name
        assert resumed == straight, signum.name  # every logged value, to the last digit
        weights, expected = last_state(run_dir)["state_dict"], last_state(straight_run)["state_dict"]
        assert weights.keys() == expected.keys()
        assert all(torch.equal(weights[k], expected[k]) for k in weights), signum.name


def test_wandb_failure_falls_back_to_csv(run_root, monkeypatch, capsys):
    import lightning.pytorch.loggers as loggers

    class BrokenWandb:
        def __init__(self, *a, **k):
            raise RuntimeError("simulated W&B outage")

    monkeypatch.setattr(loggers, "WandbLogger", BrokenWandb)
    args = short_run_args(run_root, *TINY_RUN, "train.max_steps=50")
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
    args = short_run_args(run_root, *TINY_RUN, "train.max_steps=50")
    args[args.index("logger=csv")] = "logger=auto"
    assert main(["task=modadd", *args]) == 0
    run_dir = only_run(run_root)
    (offline,) = list((run_dir / "wandb").glob("offline-run-*"))
    assert list(offline.glob("*.wandb"))


# ---------------------------------------------------------------------------------------------- round two


def tiny_args(root, *extra):
    return ["task=modadd", *short_run_args(root, *TINY_RUN, *extra)]


def last_state(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def snapshot(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_extend_twice_and_move_resumes_from_the_newest_state(tmp_path):
    straight_root, root = tmp_path / "straight", tmp_path / "runs"
    assert main(tiny_args(straight_root, "train.max_steps=400")) == 0
    assert main(tiny_args(root, "train.max_steps=200")) == 0
    run_dir = only_run(root)
    assert main([f"resume={run_dir}", "train.max_steps=300"]) == 0
    moved = tmp_path / "elsewhere" / run_dir.name
    moved.parent.mkdir()
    run_dir.rename(moved)
    assert main([f"resume={moved}", "train.max_steps=400"]) == 0
    assert json.loads((moved / "summary.json").read_text())["steps_trained"] == 400
    assert last_state(moved)["global_step"] == 400
    names = sorted(p.name for p in (moved / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step=400.ckpt"]  # no last-v1, no old dir
    # the same rows as one 400-step run, plus the final-step rows the shorter runs ended with
    extended = [r for r in metrics_rows(moved) if r["step"] not in ("199", "299")]
    assert extended == metrics_rows(only_run(straight_root))


def test_failed_resume_changes_nothing_and_names_the_key(run_root, capsys):
    assert main(tiny_args(run_root, "train.max_steps=100")) == 0
    run_dir = only_run(run_root)
    before = snapshot(run_dir)
    capsys.readouterr()
    for bad, named in [
        ("model.n_neurons=48", "model.n_neurons"),
        ("data.p=13", "data.p"),
        ("train.seed=7", "train.seed"),
        ("task=parity", "task=parity"),
    ]:
        assert main([f"resume={run_dir}", bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and named in err, err
        assert snapshot(run_dir) == before, bad
    assert main([f"resume={run_dir}", "task=modadd", "train.max_steps=150"]) == 0  # the run still resumes


@pytest.mark.parametrize("damage", ["truncated_checkpoint", "corrupt_config"])
def test_damaged_run_directory_refuses_resume_with_one_line(run_root, capsys, damage):
    assert main(tiny_args(run_root, "train.max_steps=100")) == 0
    run_dir = only_run(run_root)
    path = run_dir / ("checkpoints/last.ckpt" if damage == "truncated_checkpoint" else "config.yaml")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2] + b"\n: [unclosed")
    before = snapshot(run_dir)
    capsys.readouterr()
    assert main([f"resume={run_dir}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and path.name in err, err
    assert snapshot(run_dir) == before


def test_second_process_on_a_run_directory_is_refused(run_root, capsys):
    assert main(tiny_args(run_root, "train.max_steps=100")) == 0
    run_dir = only_run(run_root)
    before = snapshot(run_dir)
    with runs.lock_run(run_dir):  # another training process holds the run (flock: per open file)
        capsys.readouterr()
        assert main([f"resume={run_dir}", "train.max_steps=200"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "another process" in err
    assert snapshot(run_dir) == before
    assert main([f"resume={run_dir}", "train.max_steps=200"]) == 0  # free again once the holder ends


def _all_finite(ckpt):
    tensors = list(ckpt["state_dict"].values())
    for opt in ckpt["optimizer_states"]:
        for state in opt["state"].values():
            tensors += [v for v in state.values() if torch.is_tensor(v) and v.is_floating_point()]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


@pytest.mark.parametrize(
    "overrides",
    [
        # weights overflow while the loss they were computed from is still finite
        ["train.max_steps=300", "optim.lr=3e37", "optim.weight_decay=10", "train.steps_per_call=1"],
        # Adam's second moment overflows (step ~630) before any weight or loss does
        ["train.max_steps=1000", "optim.lr=1", "optim.weight_decay=2.02", "train.checkpoint_every=10"],
    ],
)
def test_every_kept_checkpoint_of_a_diverged_run_is_finite(run_root, overrides):
    args = tiny_args(run_root, "train.checkpoint_every=1", "train.keep_checkpoints=-1", *overrides)
    assert main(args) == 1
    run_dir = only_run(run_root)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged"
    ckpts = list((run_dir / "checkpoints").glob("*.ckpt"))
    assert ckpts
    for path in ckpts:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        assert _all_finite(ckpt), path.name
        assert ckpt["global_step"] <= summary["diverged_at_step"] + 1


def test_non_finite_optimiser_state_is_a_divergence_not_a_checkpoint(run_root, monkeypatch):
    from grok_lightning import optim

    real_step, calls = optim.BatchedAdam.step, {"n": 0}

    def step_with_inf_moment_at_update_120(self, *a, **k):
        out = real_step(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 121:  # update 120: weights stay finite, Adam's second moment does not
            next(iter(self.state.values()))["exp_avg_sq"].fill_(float("inf"))
        return out

    monkeypatch.setattr(optim.BatchedAdam, "step", step_with_inf_moment_at_update_120)
    assert main(tiny_args(run_root, "train.max_steps=300")) == 1
    run_dir = only_run(run_root)
    assert json.loads((run_dir / "summary.json").read_text())["diverged_at_step"] == 149
    assert last_state(run_dir)["global_step"] == 100 and _all_finite(last_state(run_dir))


def test_default_retention_keeps_last_plus_one_step_file_on_one_inode(run_root):
    args = ["task=modadd", *short_run_args(run_root, *TINY, *callbacks_off(), "train.max_steps=1000")]
    assert main(args) == 0
    folder = only_run(run_root) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "step=1000.ckpt"]
    assert os.path.samefile(folder / "last.ckpt", folder / "step=1000.ckpt")


def test_resumed_csv_drops_a_row_cut_short_by_a_kill(tmp_path):
    from grok_lightning.loggers import RunCSVLogger

    (tmp_path / "metrics.csv").write_text("step,train/loss\n0,0.5\n10,0.25\n20,0.125\n3")  # "30,..." cut
    logger = RunCSVLogger(tmp_path, keep_before_step=1000)
    _ = logger.experiment
    assert (tmp_path / "metrics.csv").read_text() == "step,train/loss\n0,0.5\n10,0.25\n20,0.125\n"


def test_full_disk_mid_run_leaves_no_truncated_checkpoint(run_root, monkeypatch, capsys):
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync_failing_from_the_eighth_write(fd):
        calls["n"] += 1
        if calls["n"] >= 8:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_failing_from_the_eighth_write)
    assert main(tiny_args(run_root, "train.max_steps=1000", "train.keep_checkpoints=-1")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "No space left" in err
    folder = only_run(run_root) / "checkpoints"
    names = [p.name for p in folder.iterdir()]
    assert "last.ckpt" in names and all(re.fullmatch(r"last\.ckpt|step=\d+\.ckpt", n) for n in names), names
    assert all(torch.load(p, weights_only=False)["global_step"] > 0 for p in folder.iterdir())


def test_full_run_root_at_the_start_leaves_no_run_directory(run_root, monkeypatch, capsys):
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    assert main(tiny_args(run_root, "train.max_steps=100")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "run_root" in err
    assert list((run_root / "modadd").iterdir()) == []


def test_unreachable_wandb_server_goes_offline_within_seconds(run_root, monkeypatch, capsys):
    """A refused connection and a DNS lookup that never answers: W&B is not started online."""
    import socket as socket_module

    from grok_lightning import loggers as run_loggers

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # credentials present: online mode
    monkeypatch.delenv("WANDB_MODE", raising=False)

    def no_network(*a, **k):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket_module, "create_connection", no_network)
    start = time.perf_counter()
    refused = run_loggers.reachable_wandb_mode()
    refused_s = time.perf_counter() - start
    hang = threading.Event()

    def silent_network(*a, **k):  # a DNS lookup that never answers (until the test lets it go)
        hang.wait(30)
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket_module, "create_connection", silent_network)
    monkeypatch.setattr(run_loggers, "WANDB_PROBE_S", 0.5)
    start = time.perf_counter()
    hung = run_loggers.reachable_wandb_mode()
    hung_s = time.perf_counter() - start
    hang.set()
    out = capsys.readouterr().out
    print(f"W&B probe: refused connection {refused_s:.2f} s, silent network {hung_s:.2f} s")
    assert refused == hung == "offline"
    assert out.count("W&B server api.wandb.ai:443 unreachable") == 2 and out.count("\n") == 2
    assert hung_s < 5  # the probe's own bound (0.5 s here), not a speed measurement


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_silent_wandb_server_adds_at_most_ten_seconds(run_root, monkeypatch, capsys, scheme):
    """A local socket that accepts connections and never answers stands for a hung W&B server: the
    run logs to W&B offline, and W&B's start and finish together stay under the 10 s README promises."""
    import socket as socket_module

    from grok_lightning import loggers as run_loggers

    server = socket_module.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # the kernel accepts; nobody ever reads or answers
    monkeypatch.setenv("WANDB_BASE_URL", f"{scheme}://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = C.load("modadd", None, [f"run_root={run_root}", "logger=auto"])
    try:
        start = time.perf_counter()
        got = run_loggers.build_loggers(cfg, run_root, "silent")
        run_loggers.finish_loggers(got, "finished", {"verdict": "memorise"})
        took = time.perf_counter() - start
    finally:
        server.close()
    out = capsys.readouterr().out
    print(f"W&B against a silent {scheme} server: {took:.1f} s")
    assert "unreachable: " in out and "logging offline" in out and "W&B offline run silent" in out
    assert [type(lg).__name__ for lg in got] == ["RunCSVLogger", "WandbLogger"]
    assert any((run_root / "wandb").glob("offline-run-*"))
    assert took < 10

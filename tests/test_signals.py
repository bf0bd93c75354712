"""Signals at the edges of a run (issue: reliability, round three): before the run directory
exists, right after it, after the last step while the final files are written, twice; and a
sweep's workers when their parent is killed with -9."""

import json
import os
import signal
import subprocess
import sys
import time

from grok_lightning.train import main
from tests.conftest import TINY, callbacks_off, only_run, short_run_args

TINY_RUN = [*TINY, "train.log_every=10", "train.checkpoint_every=50", "train.max_steps=100"]


def run_dirs(run_root):
    folder = run_root / "modadd"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_interrupt_before_the_run_directory_exits_130_without_a_traceback(run_root, monkeypatch, capsys):
    import grok_lightning.module as M

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(M, "build_run_module", interrupted)  # train imports it where a run starts
    assert main(["task=modadd", *short_run_args(run_root, *TINY_RUN)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted before training started" in err and "Traceback" not in err
    assert run_dirs(run_root) == []


def test_sigint_or_sigterm_right_after_the_run_directory_leaves_no_directory(run_root, monkeypatch, capsys):
    import grok_lightning.loggers as L

    # Python's own Ctrl-C handler, as in a fresh process (an earlier test may have left another)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _signal_each(run_root, monkeypatch, L)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # main restored the default


def _signal_each(run_root, monkeypatch, L):
    for signum in (signal.SIGINT, signal.SIGTERM):

        def signalled(*a, signum=signum, **k):
            os.kill(os.getpid(), signum)
            time.sleep(1)  # the handler runs in the main thread at the next bytecode
            raise AssertionError("the signal did not stop the run")

        monkeypatch.setattr(L, "build_loggers", signalled)
        assert main(["task=modadd", *short_run_args(run_root, *TINY_RUN)]) == 130, signum
        assert run_dirs(run_root) == [], signum  # neither a half directory nor a lock left


def test_signals_while_the_final_files_are_written_finish_them(run_root, monkeypatch, capsys):
    """After the last step: Ctrl-C twice and a SIGTERM while the explorer page is written, and a
    Ctrl-C while the analyses draw their end-of-run figures. The run ends finished, exit 0."""
    import grok_lightning.explorer as E
    from grok_lightning.callbacks.loss_gap import LossGap

    write_page, finals = E.write_run_page, LossGap.finals

    def pressed_during_page(run_dir):
        for s in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
            os.kill(os.getpid(), s)
        return write_page(run_dir)

    def pressed_during_figures(self, pl_module, step):
        os.kill(os.getpid(), signal.SIGINT)
        return finals(self, pl_module, step)

    monkeypatch.setattr(E, "write_run_page", pressed_during_page)
    monkeypatch.setattr(LossGap, "finals", pressed_during_figures)
    args = short_run_args(run_root, *TINY_RUN, *callbacks_off("loss_gap", "trajectory"))
    assert main(["task=modadd", *args]) == 0
    out = capsys.readouterr().out
    run_dir = only_run(run_root)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps_trained"] == 100
    assert (run_dir / "explorer.html").is_file() and (run_dir / "figures" / "curves.png").is_file()
    assert "finished first" in out and "interrupted" not in out


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_sweep_workers_end_when_their_parent_is_killed(tmp_path):
    """kill -9 of the process that started a sweep's workers: they see their parent gone and stop
    (they run in their own session, so no terminal signal reaches them)."""
    sweep_file = tmp_path / "long.yaml"
    sweep_file.write_text(
        "task: modadd\npreset: main\n"
        "base: {model: {init: torch, d_embed: 8, n_neurons: 4}, data: {p: 11},\n"
        "       train: {max_steps: 1000000, step_cap: 0}}\n"
        "grid: {optim.lr: [1.0e-3, 2.0e-3]}\nseeds: 1\n"
    )
    env = {**os.environ, "GROK_SWEEP_WORKERS": "2", "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "grok_lightning.sweep", f"sweep={sweep_file}", f"out_dir={tmp_path / 'out'}"]
    parent = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while len(_children(parent.pid)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        workers = _children(parent.pid)
        assert len(workers) == 2, "the sweep did not start its 2 workers"
        time.sleep(3)  # let them get going
        parent.kill()
        parent.wait()
        deadline = time.time() + 120
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.5)
        assert not any(_alive(w) for w in workers), "orphaned workers kept running"
    finally:
        parent.kill()
        for w in _children(parent.pid):
            os.kill(w, signal.SIGKILL)

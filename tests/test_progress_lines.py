"""Progress where stdout is no terminal (nohup, a scheduler's log): plain lines at least once a
minute, also when one training_step call (steps_per_call optimiser steps) outlasts that. A fake
clock advanced by each optimiser step stands for a slow model; a real sweep command with its
stdout in a file checks that the lines reach the file before the batch's end line."""

import io
import os
import re
import subprocess
import sys
import time
from functools import partial

import lightning as L
import pytest
import torch
from rich.console import Console

from grok_lightning import config as C
from grok_lightning import sweep as S
from grok_lightning import trainer as T
from grok_lightning.sweep import progress as SP
from grok_lightning.sweep import run as SR

STEP_S = 4.0  # fake seconds per optimiser step: a call of 10 steps takes 40 s, more than every_s

TINY_SWEEP = """\
task: modadd
base:
  data: {{p: 11, train_fraction: 0.5}}
  model: {{d_embed: 8, n_neurons: 4, init: torch}}
  train: {{max_steps: {steps}, step_cap: 0}}  # a fixed budget: "step s / max_steps"
  logger: csv
grid:
  optim.weight_decay: [0.1, 1.0]
seeds: 1
calibration: {{enabled: false}}
"""


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowSteps(L.Callback):
    """Each optimiser step takes STEP_S on the fake clock (listed before the progress callback)."""

    def __init__(self, clock: FakeClock):
        self.clock = clock

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.clock.now += STEP_S


class Log(io.StringIO):
    """A non-terminal stream that notes the fake time each line was finished at."""

    def __init__(self, clock: FakeClock):
        super().__init__()
        self.clock, self.lines, self.partial = clock, [], ""

    def write(self, text: str) -> int:
        *done, self.partial = (self.partial + text).split("\n")
        self.lines += [(self.clock.now, line) for line in done]
        return super().write(text)


def assert_a_line_each_fake_minute(times: list, end: float) -> None:
    assert times[0] <= STEP_S
    minutes = {int(t // 60) for t in times}
    assert minutes >= set(range(int(end // 60))), (times, end)
    assert max(b - a for a, b in zip(times, times[1:])) <= 60


def test_a_training_run_prints_at_least_once_a_minute_when_a_call_is_long():
    """PlainProgress (a single run's bar where stdout is no terminal) reads its clock at every
    optimiser step: a 40 s call does not hold a line back."""
    clock = FakeClock()
    log = Log(clock)
    cfg = C.load("modadd", None, ["data.p=11", "model.d_embed=8", "model.n_neurons=4", "train.max_steps=100"])
    assert cfg.train.steps_per_call == 10
    model = S.Model(id="m", point=0, seed=0, lr=1e-2, weight_decay=1.0)
    lines = T.PlainProgress(every_s=30, clock=clock, out=log)
    S.fit_batch(cfg, S.batch.padded([model]), torch.device("cpu"), [SlowSteps(clock), lines])
    times = [t for t, _ in log.lines]
    assert_a_line_each_fake_minute(times, 100 * STEP_S)
    steps = [int(line.split()[1]) for _, line in log.lines]
    assert steps[:3] == [0, 8, 16]  # inside calls, not only at their ends (10, 20, ...)
    assert steps[-1] == 100 and all(line.startswith("step ") for _, line in log.lines)
    assert "ETA" in log.lines[1][1] and "train/acc" in log.lines[1][1]
    assert "ETA" not in log.lines[-1][1]  # the end line


def test_the_eta_counts_to_the_nominal_budget_then_at_most_to_the_cap():
    from types import SimpleNamespace

    from grok_lightning.fate import Budget

    clock = FakeClock()
    log = Log(clock)
    lines = T.PlainProgress(every_s=30, clock=clock, out=log)
    module = SimpleNamespace(latest={}, budget=Budget(nominal=100, cap=300, margin=10, window=20))
    trainer = SimpleNamespace(global_step=0, max_steps=300, is_global_zero=True)
    lines.on_train_start(trainer, module)
    for step in (0, 50, 100):  # 0.1 s a step
        clock.now, trainer.global_step = step / 10, step
        lines.emit(trainer, module, clock.now)
    assert [line for _, line in log.lines] == [
        "step 0 / 100 (cap 300)",
        "step 50 / 100 (cap 300)  ETA 5 s",
        "step 100 / 100 (cap 300)  ETA 20 s at most",
    ]


class Stdout(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_build_trainer_chooses_plain_lines_where_stdout_is_no_terminal(monkeypatch):
    cfg = C.load("modadd", None, ["data.p=11"])
    for tty, kind in ((False, T.PlainProgress), (True, T.GrokProgressBar)):
        monkeypatch.setattr(sys, "stdout", Stdout(tty))
        trainer = T.build_trainer(cfg, None, [], False, checkpoints=False)
        assert any(isinstance(cb, kind) for cb in trainer.callbacks), kind


def test_the_interval_variable(monkeypatch):
    monkeypatch.setenv(T.PROGRESS_EVERY_ENV, "0.5")
    assert T.PlainProgress().every_s == 0.5
    monkeypatch.delenv(T.PROGRESS_EVERY_ENV)
    assert T.PlainProgress().every_s == 30
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv(T.PROGRESS_EVERY_ENV, bad)
        with pytest.raises(C.ConfigError, match=T.PROGRESS_EVERY_ENV):
            T.PlainProgress()


def _run_fake_sweep(tmp_path, monkeypatch, console: Console, clock: FakeClock):
    """A 2-model sweep on rank 0 of 2 (rank 1 never comes: rank 0 trains both batches), slow steps."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SWEEP.format(steps=100))
    sweep = S.load_sweep([f"sweep={path}", f"out_dir={tmp_path / 'out'}"])
    real_fit = SR.fit_batch
    monkeypatch.setattr(
        SR,
        "fit_batch",
        lambda cfg, models, device, cbs: real_fit(cfg, models, device, [SlowSteps(clock), *cbs]),
    )
    monkeypatch.setattr(SR, "progress_callback", partial(SP.progress_callback, clock=clock))
    monkeypatch.setattr(SR, "finish", lambda sweep, console: [])  # the figures: not what this tests
    SR.run_sweep(sweep, S.Launch("workers", 0, 2, 0, 2), console)


def test_sweep_batches_print_lines_each_fake_minute_in_a_log(tmp_path, monkeypatch):
    clock = FakeClock()
    log = Log(clock)
    _run_fake_sweep(tmp_path, monkeypatch, Console(file=log, force_terminal=False, soft_wrap=True), clock)
    batch_lines = [(t, line) for t, line in log.lines if ": step " in line]
    ends = [i for i, (_, line) in enumerate(log.lines) if " models x 100 steps in " in line]
    assert len(ends) == 2  # two batches of one model
    ids = [re.match(r"\[rank 0/2\] batch (\S+): step ", line).group(1) for _, line in batch_lines]
    assert len(set(ids)) == 2
    for n, batch_id in enumerate(dict.fromkeys(ids)):
        mine = [(t, line) for t, line in batch_lines if f"batch {batch_id}: " in line]
        start = n * 100 * STEP_S
        assert_a_line_each_fake_minute([t - start for t, _ in mine], 100 * STEP_S)
        # every line of a batch comes before its end line
        assert log.lines.index(mine[-1]) < ends[n]
        assert f"sweep {n}/2 batches ({n}/2 models) done, 1 running" in mine[-1][1]
        assert "running 1/1 models" in mine[-1][1] and "  ETA " in mine[-1][1]
    first = batch_lines[0][1]
    # no ETA nor metrics before the first step: the line says the batch has started
    head = f"[rank 0/2] batch {ids[0]}: step 0 / 100  running 1/1 models  "
    assert first == head + "sweep 0/2 batches (0/2 models) done, 1 running"


def test_a_terminal_console_gets_the_live_bar_and_no_plain_lines(tmp_path, monkeypatch):
    clock = FakeClock()
    log = Log(clock)
    _run_fake_sweep(
        tmp_path, monkeypatch, Console(file=log, force_terminal=True, color_system=None, width=120), clock
    )
    text = log.getvalue()
    assert " models x 100 steps in " in text
    assert text.count("(1 models) ━") >= 2  # the live bar, once per batch
    assert ": step " not in text and "running 1/1" not in text


def test_sweep_status_counts_done_and_running_batches_and_estimates_the_rest(tmp_path):
    batches = [
        {"id": "a", "models": ["m1", "m2"], "est_s": 100.0, "owner": 0},
        {"id": "b", "models": ["m3"], "est_s": 50.0, "owner": 1},
        {"id": "c", "models": ["m4"], "est_s": 30.0, "owner": 1},
        {"id": "d", "models": ["m5"], "est_s": 20.0, "owner": 0},
    ]
    for folder in ("batches", "locks"):
        (tmp_path / folder).mkdir()
    (tmp_path / "batches" / "c.json").write_text("{}")
    launched = time.time() - 100
    for name, started in (("b", time.time() - 30), ("d", launched - SP.STALE_LOCK_S - 1)):
        (tmp_path / "locks" / f"{name}.lock").touch()
        os.utime(tmp_path / "locks" / f"{name}.lock", (started, started))
    status = SP.SweepStatus(tmp_path, batches, world_size=2, since=launched)
    # a (here) has 40 s left, then d (its lock is an earlier launch's): 60 s on rank 0; b has run
    # 30 s of its 50 on rank 1
    assert status.items("a", 40.0) == {
        "sweep": "1/4 batches (1/5 models) done, 2 running",
        "sweep ETA": "60 s",
    }
    assert status.items("a", None)["sweep ETA"] == "2.0 min"  # no speed yet: the plan's 100 s + 20 s
    uncalibrated = SP.SweepStatus(tmp_path, [{**b, "est_s": None} for b in batches], 2, launched)
    assert "sweep ETA" not in uncalibrated.items("a", 40.0)


def test_the_sweep_command_writes_progress_lines_to_a_log_file_before_the_batch_ends(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SWEEP.format(steps=300))
    log_path = tmp_path / "sweep.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", T.PROGRESS_EVERY_ENV: "0.05"}
    cmd = [sys.executable, "-m", "grok_lightning.sweep", f"sweep={path}", f"out_dir={tmp_path / 'out'}"]
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [*cmd, "workers=1"], stdout=log, stderr=subprocess.PIPE, text=True, env=env, timeout=120
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = log_path.read_text().splitlines()
    (end,) = [i for i, line in enumerate(lines) if " models x 300 steps in " in line]
    progress = [
        i
        for i, line in enumerate(lines)
        if re.match(r"batch \S+: step [\d,]+ / 300  running 2/2 models  ", line)
    ]
    assert len(progress) >= 2 and progress[-1] < end, "\n".join(lines)

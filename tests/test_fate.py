"""The fate verdict (generalised / not yet / stuck / did not fit) on hand-made histories, and the
adaptive budget on tiny real runs: continues when the test loss falls, stops when it is flat, stops a
margin after generalising, resumes mid-extension exactly, and freezes the stopped models of a batch."""

import json
import os
import signal

import numpy as np
import pytest
import torch

from grok_lightning import fate as F
from tests.conftest import callbacks_off, metrics_rows, short_run_args, train_quietly

STEPS = np.arange(0, 50_000, 100)
FITTED = np.ones(len(STEPS))
CHANCE = np.full(len(STEPS), 0.02)


def judge(test_loss, test_acc=CHANCE, train_acc=FITTED, cap=150_000, window=10_000, upto=None):
    n = len(STEPS) if upto is None else upto
    return F.fate(STEPS[:n], train_acc[:n], test_acc[:n], np.asarray(test_loss)[:n], cap=cap, window=window)


def test_falling_test_loss_is_not_yet_with_its_eta():
    # log10 test loss falls 0.02 decades per 1,000 steps from 0.5: reaches 1e-2 at ~(log10(50)/0.02)k
    loss = 0.5 * 10 ** (-0.02 * STEPS / 1000)
    f = judge(loss)
    assert f.fate == "not yet" and f.slope_per_1k == pytest.approx(-0.02, rel=1e-6)
    assert f.eta_step == pytest.approx(np.log10(50) / 0.02 * 1000, rel=1e-3)
    assert "at this rate 0.01 by" in f.reason


def test_flat_and_rising_test_loss_are_stuck():
    assert judge(np.full(len(STEPS), 1.3)).fate == "stuck"
    rising = judge(0.07 * 10 ** (0.01 * STEPS / 1000))
    assert rising.fate == "stuck" and "flat or rising" in rising.reason


def test_falling_too_slowly_for_the_cap_is_stuck():
    loss = 0.5 * 10 ** (-0.001 * STEPS / 1000)  # 0.1 decades by a cap of 150,000, 0.35 by 400,000
    assert judge(loss, cap=150_000).fate == "stuck" and "only 0.10 decades" in judge(loss).reason
    assert judge(loss, cap=400_000).fate == "not yet"


def test_generalised_and_did_not_fit():
    acc = np.where(STEPS >= 30_000, 1.0, 0.02)
    loss = np.where(STEPS >= 30_000, 1e-4, 1.0)
    f = judge(loss, test_acc=acc)
    assert (f.fate, f.generalise_step) == ("generalised", 30_000)
    assert judge(loss, train_acc=np.full(len(STEPS), 0.5)).fate == "did not fit"


def test_only_rows_so_far_count_and_early_is_not_yet():
    loss = np.where(STEPS < 20_000, 1.3, 1.3 * 10 ** (-0.2 * (STEPS - 20_000) / 1000))
    assert judge(loss, upto=150).fate == "stuck"  # flat up to step 14,900: later rows unseen
    assert judge(loss).fate == "not yet"
    assert judge(loss, upto=50).fate == "not yet" and "fewer than" in judge(loss, upto=50).reason


def test_budget_decisions():
    b = F.Budget(nominal=50_000, cap=150_000, margin=5_000, window=10_000)
    stuck, later = F.Fate("stuck", "flat"), F.Fate("not yet", "falling")
    assert b.decide(30_000, stuck) is None  # the nominal budget is always trained
    assert b.decide(49_999, stuck).startswith("stuck")
    assert b.decide(49_999, later) is None and b.decide(149_999, later).startswith("reached the cap")
    early, late = (
        F.Fate("generalised", "", generalise_step=40_000),
        F.Fate("generalised", "", generalise_step=60_000),
    )
    assert b.decide(49_999, early) == "generalised within the nominal budget"
    assert b.decide(64_000, late) is None and "stopped 5,000 steps later" in b.decide(64_999, late)
    assert not F.Budget(50_000, 50_000, 1, 1).adaptive


def test_early_budget_stops_margin_steps_after_the_test_accuracy_arrives():
    """train.stop_when_generalised: a model whose test accuracy reached 0.99 at 10,000 stops at 11,000
    (margin 1,000), not at the nominal 50,000, whatever its fate (its test loss may stay above 1e-2);
    without it, nothing stops before the nominal budget."""
    early = F.Budget(nominal=50_000, cap=50_000, margin=1_000, window=10_000, early=True)
    stuck = F.Fate("stuck", "flat")
    assert early.decide(10_500, stuck, accurate_at=10_000) is None
    assert "stopped 1,000 steps later" in early.decide(10_999, stuck, accurate_at=10_000)
    assert early.decide(10_999, stuck) is None  # not accurate yet: the nominal budget is trained
    assert F.Budget(50_000, 50_000, 1_000, 10_000).decide(10_999, stuck, accurate_at=10_000) is None


# A tiny model that groks a few hundred steps after a 700-step nominal budget (seed 1: solved at
# 1,110), and one whose test loss still rises at the end of its budget (stuck).
GROKS_LATE = [
    "data.p=23",
    "model.d_embed=64",
    "model.n_neurons=32",
    "model.init=torch",
    "data.train_fraction=0.6",
    "optim.lr=1e-2",
    "train.seed=1",
    "train.log_every=10",
    "train.checkpoint_every=50",
    "train.max_steps=700",
    "train.step_cap=6000",
    "train.stop_margin=70",
]
STAYS_STUCK = [
    "data.p=23",
    "model.d_embed=32",
    "model.n_neurons=16",
    "model.init=torch",
    "train.seed=1",
    "train.max_steps=600",
    "train.step_cap=6000",
    "train.log_every=10",
]


def summary_of(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_run_continues_while_falling_and_stops_a_margin_after_generalising(run_root):
    s = summary_of(train_quietly("modadd", None, short_run_args(run_root, *GROKS_LATE, *callbacks_off())))
    assert s["fate"] == "generalised" and s["solved_step"] > 700
    assert s["steps_trained"] > 700 and s["extra_steps"] == s["steps_trained"] - 700
    # stopped at the first logged step a margin (70) after the solved step
    assert s["solved_step"] + 70 <= s["steps_trained"] < s["solved_step"] + 70 + 10
    assert "past the nominal 700 (not yet at 700: " in s["extension"] and "generalised at" in s["stop_reason"]
    assert s["fate_at_nominal"] == "not yet" and "decades per 1,000 steps" in s["fate_at_nominal_reason"]


def test_early_stop_ends_a_run_a_margin_after_its_test_accuracy_arrives(run_root):
    """train.stop_when_generalised within a 3,000-step nominal budget: the same model stops at the first
    logged step 70 steps after its test accuracy first reached 0.99."""
    args = [*GROKS_LATE, "train.max_steps=3000", "train.step_cap=0", "train.stop_when_generalised=true"]
    run = train_quietly("modadd", None, short_run_args(run_root, *args, *callbacks_off()))
    s = summary_of(run)
    accurate = s["generalise_step"]  # the accuracy verdict's: test accuracy >= 0.99
    assert accurate is not None and s["steps_trained"] < 3000
    assert accurate + 70 <= s["steps_trained"] < accurate + 70 + 10
    assert s["stop_reason"].endswith("(early)") and f"{accurate:,}" in s["stop_reason"]


def test_run_stops_at_the_nominal_budget_when_stuck(run_root):
    s = summary_of(train_quietly("modadd", None, short_run_args(run_root, *STAYS_STUCK, *callbacks_off())))
    assert (s["steps_trained"], s["extra_steps"], s["fate"]) == (600, 0, "stuck")
    assert s["stop_reason"].startswith("stuck")


def test_fixed_budget_with_step_cap_zero(run_root):
    s = summary_of(
        train_quietly(
            "modadd", None, short_run_args(run_root, *GROKS_LATE, "train.step_cap=0", *callbacks_off())
        )
    )
    assert s["steps_trained"] == 700 and s["fate"] in ("not yet", "stuck")


def test_resume_in_the_middle_of_an_extension_is_exact(tmp_path, monkeypatch):
    import lightning as L

    from grok_lightning import callbacks
    from grok_lightning.train import main

    straight = train_quietly("modadd", None, short_run_args(tmp_path / "a", *GROKS_LATE, *callbacks_off()))

    class StopAt(L.Callback):  # a Ctrl-C at a chosen step inside the extension
        def on_train_batch_end(self, trainer, pl_module, *args):
            if trainer.global_step == 900:
                os.kill(os.getpid(), signal.SIGINT)

    real = callbacks.build_callbacks
    monkeypatch.setattr(callbacks, "build_callbacks", lambda *a, **k: [*real(*a, **k), StopAt()])
    cut = train_quietly("modadd", None, short_run_args(tmp_path / "b", *GROKS_LATE, *callbacks_off()))
    assert summary_of(cut)["status"] == "interrupted" and 700 < summary_of(cut)["steps_trained"] < 1000
    monkeypatch.setattr(callbacks, "build_callbacks", real)
    assert main([f"resume={cut}"]) == 0
    assert metrics_rows(cut) == metrics_rows(straight)
    a, b = (
        torch.load(d / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"] for d in (cut, straight)
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    for key in ("steps_trained", "fate", "stop_reason", "solved_step"):
        assert summary_of(cut)[key] == summary_of(straight)[key], key


def test_sweep_freezes_stopped_models_and_keeps_the_others_numbers(tmp_path):
    """In a batch, a model that stops is frozen (its weights stay) while the others train on; a
    model's numbers are those it has trained alone."""
    from grok_lightning import config as C
    from grok_lightning.sweep.batch import fit_batch, padded
    from grok_lightning.sweep.spec import Model

    cfg = C.load("modadd", None, [*GROKS_LATE, *callbacks_off(), "train.progress_bar=false", "logger=csv"])
    models = [Model(f"m{s}", 0, s, 1e-2, 1.0) for s in (0, 1, 2, 3)]
    batch, _ = fit_batch(cfg, padded(models), torch.device("cpu"))
    stops = batch.stopped_at[:4]
    assert len(set(stops)) > 1, stops  # they stopped at different steps
    alone, _ = fit_batch(cfg, padded(models[1:2]), torch.device("cpu"))
    steps, values = batch.history_tensor()
    _, solo = alone.history_tensor()
    n = batch.rows_of(1)
    assert n == alone.rows_of(0) and torch.equal(values[:n, 1], solo[:n, 0])
    k = int(np.argmin(stops))  # the first to stop: frozen, its later rows all repeat one row
    first = batch.rows_of(k)
    later = values[first:, k]
    assert len(later) > 1 and torch.equal(later, later[:1].expand_as(later))
    # accuracies and test loss are measured after the stopping update: unchanged since
    assert torch.equal(later[0, 1:4], values[first - 1, k, 1:4])


def test_plain_progress_lines_where_there_is_no_terminal(capsys):
    """Under nohup or a scheduler: a line at most every 30 s (fake clock), with the fate; one at the end."""
    from types import SimpleNamespace

    from grok_lightning.trainer import PlainProgress

    now = {"t": 0.0}
    bar = PlainProgress(every_s=30, clock=lambda: now["t"])
    module = SimpleNamespace(
        latest={"train/acc": 1.0, "test/acc": 0.5},
        latest_fate=F.Fate("not yet", ""),
        budget=F.Budget(50_000, 150_000, 5_000, 10_000),
    )
    trainer = SimpleNamespace(global_step=10, is_global_zero=True)
    for t, step in ((0, 10), (10, 20), (29, 30), (31, 40), (50, 50), (61.5, 60)):
        now["t"], trainer.global_step = t, step
        bar.on_train_batch_end(trainer, module)
    bar.on_train_end(trainer, module)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["10", "40", "60", "60"]
    assert lines[0] == "step 10 / 50,000 (cap 150,000)  train/acc 1.0000  test/acc 0.5000  fate not yet"

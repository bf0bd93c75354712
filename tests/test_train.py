import csv
import json

import pytest

from grok_lightning import outcome
from grok_lightning.train import main
from tests.conftest import short_run_args


def read_metrics(run_dir):
    """The module's own rows (analysis callbacks add rows of their own at their cadence)."""
    with open(run_dir / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r["train/loss"]]


def only_run(run_root):
    (run_dir,) = list((run_root / "modadd").iterdir())
    return run_dir


def test_short_main_run_memorises_and_writes_its_directory(run_root):
    assert main(["task=modadd", *short_run_args(run_root, "train.max_steps=1000")]) == 0
    run_dir = only_run(run_root)
    for name in (
        "config.yaml",
        "metrics.csv",
        "summary.json",
        "checkpoints/last.ckpt",
        "checkpoints/step=1000.ckpt",
    ):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps_trained"] == 1000
    assert summary["final"]["train/acc"] == 1.0  # the main preset fits its 911 pairs within 1,000 steps
    assert summary["memorise_step"] is not None and summary["memorise_step"] < 1000
    assert summary["outcome"] in ("memorise", "fail")
    rows = read_metrics(run_dir)
    assert [int(r["step"]) for r in rows][:3] == [0, 10, 20] and int(rows[-1]["step"]) == 999
    assert {
        "train/loss",
        "train/acc",
        "test/loss",
        "test/acc",
        "gap/loss",
        "weights/l1",
        "weights/l2",
    } <= set(rows[0])
    # both verdicts, and they agree with the run's own metrics.csv
    col = {k: [float(r[k]) for r in rows] for k in ("train/loss", "test/loss", "train/acc", "test/acc")}
    again = outcome.summarise(
        [int(r["step"]) for r in rows], col["train/loss"], col["test/loss"], col["train/acc"], col["test/acc"]
    )
    for key in ("verdict", "verdict_text", "outcome", "outcome_reason", "disagreement", "memorise_step"):
        assert summary[key] == again[key], key
    assert summary["verdict"] == "memorise" and summary["verdict_text"].startswith("memorised at step")


def test_same_seed_same_metrics(run_root):
    for _ in range(2):
        assert main(["task=modadd", *short_run_args(run_root, "train.max_steps=300")]) == 0
    a, b = sorted((run_root / "modadd").iterdir())
    assert a != b
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()


def test_resume_continues_the_step_count_and_the_metrics(run_root, tmp_path):
    args = short_run_args(
        run_root, "model.d_embed=40", "model.init=torch", "train.checkpoint_every=100", "train.log_every=20"
    )
    assert main(["task=modadd", *args, "train.max_steps=200"]) == 0
    run_dir = only_run(run_root)
    assert main([f"resume={run_dir}", "train.max_steps=400"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps_trained"] == 400
    resumed = read_metrics(run_dir)
    straight_root = tmp_path / "straight"
    assert main(["task=modadd", *short_run_args(straight_root, *args[3:]), "train.max_steps=400"]) == 0
    straight = read_metrics(only_run(straight_root))
    # The first leg also measured its last step (199); everything else lines up step for step.
    resumed = [r for r in resumed if r["step"] != "199"]
    assert [r["step"] for r in resumed] == [r["step"] for r in straight]
    for r, s in zip(resumed, straight):
        assert float(r["train/loss"]) == pytest.approx(float(s["train/loss"]), rel=1e-6)
        assert r["test/acc"] == s["test/acc"]

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


def test_help_lists_every_key_of_the_schema_with_type_and_default(capsys):
    from grok_lightning.cli_help import schema_keys
    from grok_lightning.tasks import TASKS

    assert main(["--help", "task=parity"]) == 0
    out = capsys.readouterr().out
    keys = list(schema_keys(TASKS["parity"].config_class))
    assert any(k == "data.n_bits" for k, _, _ in keys)
    for key, kind, default in keys:
        (line,) = [ln for ln in out.splitlines() if ln.split()[:1] == [key]]
        assert line.split()[1] == kind and line.rstrip().endswith(repr(default)), line
    assert main(["--help"]) == 0
    shared = capsys.readouterr().out
    assert all(name in shared for name in TASKS) and "optim.weight_decay" in shared
    assert "data.n_bits" not in shared  # parity's own key


def test_print_config_prints_the_resolved_yaml_and_writes_nothing(run_root, capsys):
    from omegaconf import OmegaConf

    from grok_lightning import config as C

    args = ["task=modadd", f"run_root={run_root}", "optim.weight_decay=0.3"]
    assert main([*args, "print_config=true"]) == 0
    printed = OmegaConf.create(capsys.readouterr().out)
    assert printed == C.load("modadd", None, args[1:])
    assert printed.optim.weight_decay == 0.3 and not run_root.exists()
    assert main([*args, "print_config=maybe"]) == 2
    assert "print_config=maybe" in capsys.readouterr().err and not run_root.exists()


def test_history_and_verdicts_follow_the_history_as_it_grows():
    """GrokModule caches the stacked history and its verdicts; growth or a replaced list renews them."""
    import torch

    from grok_lightning import config as C
    from grok_lightning.module import build_run_module

    cfg = C.load("modadd", None, ["data.p=7", "model.d_embed=4", "model.n_neurons=3", "model.init=torch"])
    datamodule, module = build_run_module(cfg)
    module.attach_data(datamodule)
    thresholds = dict(loss_threshold=1e-5, ratio_threshold=5e4)
    module.record(0)
    steps, first = module.history_tensor()
    assert steps == [0] and first.shape == (1, 1, 7)
    assert module.verdicts(0, **thresholds)["memorise_step"] is None
    module.record(1)
    assert module.history_tensor()[1].shape == (2, 1, 7)
    module.history_steps, module.history = [5], [torch.ones(1, 7, dtype=torch.float64)]
    steps, values = module.history_tensor()
    assert steps == [5] and bool((values == 1).all())
    assert module.verdicts(0, **thresholds)["memorise_step"] == 5  # train acc 1.0 at step 5


def test_backward_without_hook_dispatch_trains_the_same_weights(tmp_path):
    """With no backward hook anywhere the module calls loss.backward() itself (the bench's overhead
    row); a callback on on_after_backward brings manual_backward back, called once per step, and
    both paths end on the same weights bit for bit."""
    import lightning as L
    import torch

    from grok_lightning import config as C
    from grok_lightning.module import build_module
    from grok_lightning.trainer import build_trainer

    class CountsBackward(L.Callback):
        calls = 0

        def on_after_backward(self, trainer, pl_module) -> None:
            CountsBackward.calls += 1

    cfg = C.load("modadd", "main", ["train.max_steps=40", "train.log_every=10", "train.progress_bar=false"])
    ends = {}
    for extra in ([], [CountsBackward()]):
        dm, module = build_module(cfg, [0], [cfg.optim.lr], [cfg.optim.weight_decay])
        trainer = build_trainer(cfg, tmp_path / str(len(extra)), extra, False)
        trainer.fit(module, datamodule=dm)
        assert module.direct_backward is (not extra)
        ends[len(extra)] = [p.detach().clone() for p in module.model.parameters()]
    assert CountsBackward.calls == 40
    assert all(torch.equal(a, b) for a, b in zip(ends[0], ends[1]))

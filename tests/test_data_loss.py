"""Nothing lost on resume (issue 22, items 2 and 3): a finished run resumed changes no byte, also
one that its adaptive budget stopped early; a resume that would lose rows, undo steps or go on from
a non-finite state is refused with one line and nothing changed; a sweep with another grid never
replaces an out_dir's results; a run extended twice (1000 -> 2000 -> 3000) has the files of an
uninterrupted 3000-step run."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from grok_lightning.train import main
from tests.conftest import TINY, callbacks_off, only_run, short_run_args
from tests.test_fate import STAYS_STUCK

# The tiny model, its cadences given (not derived from max_steps), no analysis callbacks.
TINY_RUN = [*TINY, "train.log_every=10", "train.checkpoint_every=50", *callbacks_off()]


def snapshot(run_dir):
    """Every file under run_dir (the lock file too) -> its bytes."""
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def one_error_line(capsys, *named):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in named:
        assert word in err, err
    return err


@pytest.fixture(scope="module")
def finished_300(tmp_path_factory):
    """A finished 300-step run (callbacks off); tests resume copies of it."""
    root = tmp_path_factory.mktemp("finished")
    assert main(["task=modadd", *short_run_args(root, *TINY_RUN, "train.max_steps=300")]) == 0
    return only_run(root)


@pytest.fixture
def run_copy(finished_300, tmp_path):
    copy = tmp_path / finished_300.name
    shutil.copytree(finished_300, copy)
    return copy


# ---------------------------------------------------------------------------------------- finished runs
def test_finished_run_resumed_changes_no_byte(run_root, capsys):
    # a fixed budget, every analysis callback on: their parts of summary.json were the keys a
    # resume set to null
    args = [
        *TINY,
        "train.log_every=10",
        "train.checkpoint_every=50",
        "train.max_steps=200",
        "train.step_cap=0",
    ]
    assert main(["task=modadd", *short_run_args(run_root, *args)]) == 0
    run_dir = only_run(run_root)
    before = snapshot(run_dir)
    capsys.readouterr()
    for extra in ([], ["train.max_steps=200"], ["train.max_steps=200", "logger=csv"]):
        assert main([f"resume={run_dir}", *extra]) == 0, extra
        out = capsys.readouterr().out
        assert "finished at step 200: nothing to train, no file changed" in out, out
        assert snapshot(run_dir) == before, extra


def test_run_its_budget_stopped_early_resumed_changes_no_byte(run_root, capsys):
    assert main(["task=modadd", *short_run_args(run_root, *STAYS_STUCK, *callbacks_off())]) == 0
    run_dir = only_run(run_root)
    before = snapshot(run_dir)
    summary = (run_dir / "summary.json").read_text()
    assert '"stop_reason": "stuck' in summary and '"steps_trained": 600' in summary  # cap 6000
    capsys.readouterr()
    assert main([f"resume={run_dir}"]) == 0  # its budget's decisions replay and stop at once
    assert "finished at step 600: nothing to train" in capsys.readouterr().out
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------------------------------- refused
@pytest.mark.parametrize(
    "damage, named",
    [
        ("empty", "rows logged before step 300 are missing"),
        ("truncated", "rows logged before step 300 are missing"),
        ("removed", "rows logged before step 300 are missing"),
        ("binary", "unreadable"),
        ("non_numeric", "not a metrics table"),
    ],
)
def test_resume_over_lost_or_damaged_metrics_is_refused(run_copy, capsys, damage, named):
    path = run_copy / "metrics.csv"
    lines = path.read_text().splitlines(keepends=True)
    if damage == "empty":
        path.write_text("")
    elif damage == "truncated":  # the header and the first half of the rows: the rest lost
        path.write_text("".join(lines[: len(lines) // 2]))
    elif damage == "removed":
        path.unlink()
    elif damage == "binary":
        path.write_bytes(b"\x00\xff\xfe\x89PNG" * 40)
    else:
        column = lines[0].rstrip("\n").split(",").index("test/acc")
        cells = lines[3].rstrip("\n").split(",")
        cells[column] = "n/a"
        path.write_text("".join([*lines[:3], ",".join(cells) + "\n", *lines[4:]]))
    before = snapshot(run_copy)
    capsys.readouterr()
    assert main([f"resume={run_copy}", "train.max_steps=400"]) == 2
    one_error_line(capsys, "metrics.csv", named)
    assert snapshot(run_copy) == before


def test_resume_below_the_runs_step_is_refused(run_copy, capsys):
    before = snapshot(run_copy)
    capsys.readouterr()
    assert main([f"resume={run_copy}", "train.max_steps=100"]) == 2
    one_error_line(capsys, "train.max_steps=100 is below the run's step 300", ">= 300")
    assert snapshot(run_copy) == before  # config.yaml still says 300
    # as if its adaptive budget (nominal 200) had trained it on to 300: the nominal may stay, the
    # cap may not go below 300
    path = run_copy / "config.yaml"
    path.write_text(path.read_text().replace("max_steps: 300", "max_steps: 200"))
    before = snapshot(run_copy)
    assert main([f"resume={run_copy}", "train.step_cap=250"]) == 2
    one_error_line(capsys, "train.step_cap=250 is below the run's step 300")
    assert main([f"resume={run_copy}", "train.max_steps=150"]) == 2
    one_error_line(capsys, "train.max_steps=150 is below the run's step 300", ">= 200")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("where", ["weights", "optimiser"])
def test_resume_from_a_non_finite_checkpoint_is_refused(run_copy, capsys, where):
    path = run_copy / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if where == "weights":
        next(iter(ckpt["state_dict"].values())).view(-1)[0] = float("nan")
    else:
        state = next(iter(ckpt["optimizer_states"][0]["state"].values()))
        next(v for v in state.values() if torch.is_tensor(v) and v.is_floating_point() and v.dim()).view(-1)[
            0
        ] = float("inf")
    torch.save(ckpt, path)
    before = snapshot(run_copy)
    capsys.readouterr()
    for extra in ([], ["train.max_steps=400"]):  # neither "done" nor trained on
        assert main([f"resume={run_copy}", *extra]) == 2
        one_error_line(capsys, "last.ckpt", "not finite")
    assert snapshot(run_copy) == before


def test_resume_of_a_config_with_an_interpolation_is_refused(run_copy, capsys):
    path = run_copy / "config.yaml"
    text = path.read_text()
    assert "wandb_project: grok_lightning" in text
    path.write_text(text.replace("wandb_project: grok_lightning", "wandb_project: ${oc.env:NOPE_VAR}"))
    before = snapshot(run_copy)
    capsys.readouterr()
    assert main([f"resume={run_copy}", "train.max_steps=400"]) == 2
    one_error_line(capsys, "config.yaml", "wandb_project", "interpolations")
    assert snapshot(run_copy) == before


SWEEP = """\
task: modadd
base:
  data: {p: 11}
  model: {d_embed: 8, init: torch}
  train: {max_steps: 30}
  logger: csv
grid:
  model.n_neurons: [4]
seeds: 1
calibration: {enabled: false}
workers: 1
"""


def test_sweep_with_another_grid_never_replaces_the_results(tmp_path, capsys):
    from grok_lightning import sweep as S

    spec, out = tmp_path / "tiny.yaml", tmp_path / "out"
    spec.write_text(SWEEP)
    assert S.main([f"sweep={spec}", f"out_dir={out}"]) == 0
    before = snapshot(out)
    capsys.readouterr()
    for other in ("grid.model.n_neurons=[8]", "grid.model.n_neurons=[4,8]", "seeds=2"):
        assert S.main([f"sweep={spec}", f"out_dir={out}", other]) == 2, other
        one_error_line(capsys, f"out_dir={out}", "another sweep's results", "another out_dir=")
        assert snapshot(out) == before, other
    assert S.main([f"sweep={spec}", f"out_dir={out}"]) == 0  # the same sweep again: a rerun
    assert (out / "results.csv").read_bytes() == before[Path("results.csv")]
    (tmp_path / "file").write_text("")
    assert S.main([f"sweep={spec}", f"out_dir={tmp_path / 'file'}"]) == 2
    one_error_line(capsys, "not a directory")


# ---------------------------------------------------------------------------------------- extend exactly
def test_extended_twice_the_files_equal_an_uninterrupted_run(tmp_path):
    """The trajectory's cadence (30) does not divide 1000 and the log cadence (10) misses 999: the
    extended run's old last steps (999, 1999) must go. The loss gap's (100) takes 999 and 1999, and
    its values there depend on the history without those rows: they must be measured again. The
    runs have the main preset's adaptive budget (cap 150,000): each leg finished because the budget
    stopped it at its nominal max_steps, and raising max_steps trains on."""
    args = [
        *TINY,
        "train.log_every=10",
        "train.checkpoint_every=100",
        "callbacks.trajectory.frames_every=30",
        "callbacks.loss_gap.scalars_every=100",
        "callbacks.loss_gap.frames_every=-1",
        *callbacks_off("trajectory", "loss_gap"),
    ]
    assert main(["task=modadd", *short_run_args(tmp_path / "straight", *args, "train.max_steps=3000")]) == 0
    assert main(["task=modadd", *short_run_args(tmp_path / "extended", *args, "train.max_steps=1000")]) == 0
    straight, extended = only_run(tmp_path / "straight"), only_run(tmp_path / "extended")
    for steps in (2000, 3000):
        assert main([f"resume={extended}", f"train.max_steps={steps}"]) == 0
    assert (extended / "metrics.csv").read_text() == (straight / "metrics.csv").read_text()
    a, b = (np.load(d / "trajectory.npz") for d in (straight, extended))
    assert a["steps"].tolist() == b["steps"].tolist() and 999 not in a["steps"]
    assert all(np.array_equal(a[n], b[n]) for n in ("W_input", "W_output"))
    a, b = (torch.load(d / "checkpoints/last.ckpt", weights_only=False) for d in (straight, extended))
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["grok_history"]["steps"] == b["grok_history"]["steps"]
    assert torch.equal(a["grok_history"]["values"], b["grok_history"]["values"])
    assert a["callbacks"] == b["callbacks"]  # the loss gap's series, the trajectory's frame steps

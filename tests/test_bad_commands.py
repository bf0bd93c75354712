"""No bad command line of the sweep, ensemble, report or explorer reaches the user as a traceback
(issue 22, item 1; tests/test_bad_input.py holds train's): exit code 2, one line on stderr that
starts with "error: " and names the key or path, and nothing created or changed. Fixed examples
first, then a property test per command (a larger budget under -m slow). Those train nothing: bad
input is refused before anything starts, so a drawn case that trains is a failure."""

import math
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grok_lightning import ensemble, report
from grok_lightning import sweep as S
from grok_lightning.explorer.__main__ import main as explore
from grok_lightning.sweep.spec import MAX_MODELS, SWEEP_FIELDS
from tests.conftest import TINY, short_run_args, train_quietly
from tests.test_bad_input import BAD, MACHINE_LACKS, MODADD_NAMES, identifiers

STEPS = "train.max_steps=20"
MINI = """\
task: modadd
base:
  data: {p: 11}
  model: {d_embed: 8, n_neurons: 4, init: torch}
  train: {max_steps: 20}
  logger: csv
grid:
  optim.weight_decay: [0.1]
calibration: {enabled: false}
"""
ENSEMBLE = ["task=modadd", *TINY, STEPS, "logger=csv", "perturb=1", "threads=0", "precisions=32"]


def snapshot(root: Path) -> dict:
    """Every path under root (root included) with its bytes and modification time: a refusal may
    change none of them (a figure rewritten with the same bytes has a new time)."""
    paths = [root, *root.rglob("*")] if root.exists() else []
    return {p: (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None) for p in paths}


def assert_refused(code: int, capsys, named: str) -> None:
    # a case that trained turned flush-to-zero on (train.flush_denormal): hypothesis could not draw
    # floats again to shrink it (as in test_bad_input)
    torch.set_flush_denormal(False)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert named in err, err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished run with its figures (the analysis callbacks on) and checkpoints at steps 10 and
    20: copied before any damage."""
    root = tmp_path_factory.mktemp("runs")
    return train_quietly(
        "modadd",
        None,
        short_run_args(root, *TINY, STEPS, "train.checkpoint_every=10", "train.keep_checkpoints=-1"),
    )


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep_file") / "mini.yaml"
    path.write_text(MINI)
    return path


@pytest.fixture(scope="module")
def tiny_sweep(mini, tmp_path_factory) -> Path:
    """The out_dir of a finished one-model sweep: copied before any rerun."""
    out = tmp_path_factory.mktemp("sweep") / "out"
    assert S.main([f"sweep={mini}", f"out_dir={out}"]) == 0
    return out


def nan_weights(path: Path, value: float = math.nan) -> None:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    for tensor in ckpt["state_dict"].values():
        if tensor.is_floating_point():
            tensor.fill_(value)
    torch.save(ckpt, path)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)  # a damage that changed nothing would let the command run
    path.write_text(text.replace(old, new))


# A damaged copy of the tiny run: what report and explorer must refuse. name -> damage(run_dir)
GARBAGE = b"\xff\xfe\x00\x89PNG\r\n\x1a\n\x00garbage"  # \xff is never UTF-8
DAMAGES = {
    "garbage_metrics": lambda d: (d / "metrics.csv").write_bytes(GARBAGE),
    "garbage_config": lambda d: (d / "config.yaml").write_bytes(GARBAGE),
    "config_not_a_mapping": lambda d: (d / "config.yaml").write_text("- 1\n- 2\n"),
    "config_unknown_task": lambda d: (d / "config.yaml").write_text("task: nope\n"),
    "config_interpolated": lambda d: edit(d / "config.yaml", "lr: 0.001", "lr: ${oc.env:GROK_NOPE_UNSET}"),
    "config_bad_value": lambda d: edit(d / "config.yaml", "n_neurons: 4", "n_neurons: -4"),
    "nan_last": lambda d: nan_weights(d / "checkpoints" / "last.ckpt"),
    "inf_step": lambda d: nan_weights(d / "checkpoints" / "step=10.ckpt", math.inf),
    "garbage_last": lambda d: (d / "checkpoints" / "last.ckpt").write_bytes(GARBAGE),
    "no_checkpoints": lambda d: shutil.rmtree(d / "checkpoints"),
    "other_model": lambda d: edit(d / "config.yaml", "d_embed: 8", "d_embed: 6"),
}
# what the explorer reads: config.yaml and metrics.csv (never a checkpoint)
EXPLORER_DAMAGES = [name for name in DAMAGES if "config" in name or "metrics" in name]


def damaged(tiny_run: Path, where: Path, damage: str) -> Path:
    run_dir = where / "run"
    shutil.copytree(tiny_run, run_dir)
    DAMAGES[damage](run_dir)
    return run_dir


# ---------------------------------------------------------------------------------------------- sweep
@pytest.mark.parametrize(
    "bad, named",
    [
        ("grid.optim.lr=['${oc.env:HOME}']", "grid.optim.lr"),
        ("run_root=${oc.env:NOPE_UNSET}", "run_root"),
        ("wandb_project=${oc.env:HOME}", "wandb_project"),  # train refuses interpolations: so does a sweep
        ("out_dir={file}", "out_dir"),
        ("out_dir={file}/sw", "out_dir"),
        ("out_dir=/proc/nonexistent/sw", "out_dir"),
        ("out_dir=/proc/self", "out_dir"),  # exists, but nobody can write there (root neither)
        ("grid.model.n_neurons=[100000000000]", "model.n_neurons"),
        ("train.cpu_threads=100000", "train.cpu_threads"),
        ("train.max_steps=99999999999999999999999", "train.max_steps"),
        ("train.accelerator=cuda", "train.accelerator"),
        ("seeds=10000000000", "seeds"),
        ("seeds=200000 grid.optim.weight_decay=[0.1,0.2,0.3,0.4,0.5,0.6]", "1,200,000 models"),
        ("seeds=３", "seeds"),
        ("train.seed=3", "train.seed"),  # each model's seed comes from seeds=
        ("train.seed={a:1}", "train.seed"),  # found by the property test: masked by each model's seed
        ("preset=", "preset"),  # as train: not the default preset
        ("out_dir=", "out_dir"),  # not the default sweeps/<name>
    ],
)
def test_sweep_command_lines_that_cannot_run(mini, tmp_path, capsys, bad, named):
    if not MACHINE_LACKS.get(bad, True):
        pytest.skip(f"this machine has what {bad} asks for")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    before = snapshot(tmp_path)
    args = bad.replace("{file}", str(blocker)).split(" ")
    assert_refused(S.main([f"sweep={mini}", f"out_dir={tmp_path / 'out'}", *args]), capsys, named)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "case",
    ["corrupt_batch", "corrupt_plan", "other_grid", "other_grid_interrupted", "more_steps_interrupted"],
)
def test_a_rerun_refuses_an_out_dir_it_cannot_continue(mini, tiny_sweep, tmp_path, capsys, case):
    """A damaged batch file or plan is refused, naming it: they are written atomically, so damage
    came from outside, and the user decides (remove it: its batch trains again). Another sweep's
    out_dir is refused whether it finished (results.csv) or was interrupted (batches and plans
    only): give another out_dir=, or remove it to start afresh."""
    out = tmp_path / "out"
    shutil.copytree(tiny_sweep, out)
    args = [f"sweep={mini}", f"out_dir={out}"]
    (batch,) = (out / "batches").glob("*.json")
    named = str(out)
    if case == "corrupt_batch":
        batch.write_bytes(GARBAGE)
        named = f"batches/{batch.name}"
    elif case == "corrupt_plan":
        (plan,) = (out / "plans").glob("*.json")
        plan.write_text('{"batches": 3}')
        named = f"plans/{plan.name}"
    else:
        args.append("grid.optim.weight_decay=[0.2]" if "grid" in case else "train.max_steps=30")
        if case.endswith("interrupted"):
            (out / "results.csv").unlink()
    before = snapshot(out)
    assert_refused(S.main(args), capsys, named)
    assert snapshot(out) == before
    if case == "corrupt_batch":  # what the message advises
        batch.unlink()
        assert S.main(args) == 0 and batch.is_file()


@pytest.mark.parametrize(
    "bad, named",
    [
        ("data.p=1" + "0" * 200, "data.p"),  # machine.estimated_bytes overflowed past a float
        ("train.max_steps=99999999999999999999999 train.step_cap=0", "train.max_steps"),  # torch's, training
    ],
)
def test_integers_past_what_the_checks_read(mini, tmp_path, capsys, bad, named):
    """No whole number in a config past 2**53 (config.validate): int64 and a float hold it."""
    out = tmp_path / "out"
    assert_refused(S.main([f"sweep={mini}", f"out_dir={out}", *bad.split(" ")]), capsys, named)
    assert not out.exists()


# ------------------------------------------------------------------------------------------- ensemble
@pytest.mark.parametrize(
    "bad, named",
    [
        ("optim.lr=${oc.env:HOME}", "optim.lr"),
        ("out_dir=${oc.env:HOME}", "out_dir"),
        ("out_dir={file}", "out_dir"),
        ("out_dir={file}/ens", "out_dir"),
        ("out_dir=/proc/nonexistent/ens", "out_dir"),
        ("data.p=100000000", "data.p"),
        ("train.accelerator=cuda", "train.accelerator"),
        ("precisions=", "precisions"),  # not the default: that trains all six precisions
        ("precisions=32,,64", "precisions"),
        ("perturb=100000000000", "perturb"),
        ("perturb=１", "perturb"),
        ("perturb=true", "perturb"),
        ("scale=nan", "scale"),
        ("threads=100000", "threads"),
        ("resume={file}", "resume"),
        ("train.max_steps=99999999999999999999999", "train.max_steps"),
    ],
)
def test_ensemble_command_lines_that_cannot_run(tmp_path, capsys, bad, named):
    if not MACHINE_LACKS.get(bad, True):
        pytest.skip(f"this machine has what {bad} asks for")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    before = snapshot(tmp_path)
    args = [*ENSEMBLE, f"out_dir={tmp_path / 'out'}", *bad.replace("{file}", str(blocker)).split(" ")]
    assert_refused(ensemble.main(args), capsys, named)
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------- report and explorer
def bad_run_dir(tiny_run, tmp_path, case: str):
    """A path the report and the explorer must refuse: missing, a file, or a damaged copy of a run."""
    if case == "missing":
        return tmp_path / "missing"
    if case == "a_file":
        (tmp_path / "a_file").write_text("not a run")
        return tmp_path / "a_file"
    return damaged(tiny_run, tmp_path, case)


@pytest.mark.parametrize(
    "case",
    ["nan_last", "inf_step", "no_checkpoints", "garbage_metrics", "config_interpolated", "missing", "a_file"],
)
def test_report_refuses_before_any_figure_is_rewritten(tiny_run, tmp_path, capsys, case):
    target = bad_run_dir(tiny_run, tmp_path, case)
    before = snapshot(tmp_path)
    assert_refused(report.main([str(target)]), capsys, str(target))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", ["garbage_metrics", "config_interpolated", "missing", "a_file"])
def test_explorer_refuses_what_the_report_refuses(tiny_run, tmp_path, capsys, case):
    target = bad_run_dir(tiny_run, tmp_path, case)
    before = snapshot(tmp_path)
    assert_refused(explore([str(target)]), capsys, str(target))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", [report.main, explore])
@pytest.mark.parametrize("argv", [[], ["a", "b"]])
def test_report_and_explorer_take_one_directory(command, argv, capsys):
    assert_refused(command(argv), capsys, f"{len(argv)} arguments")


# ----------------------------------------------------------------------------------------- properties
def draw(key, values) -> st.SearchStrategy:
    """key=value for each key and value drawn (each: a strategy, or a key / a list to sample)."""
    values = values if isinstance(values, st.SearchStrategy) else st.sampled_from(values)
    return st.builds(lambda k, v: f"{k}={v}", st.sampled_from([key]) if isinstance(key, str) else key, values)


INTERPOLATIONS = [
    "${oc.env:HOME}",
    "${oc.env:GROK_NOPE_UNSET}",
    "${data.p}",
    "${oc.decode:1}",
    "[${oc.env:HOME}]",
]
FOREIGN_DIGITS = st.text(st.sampled_from("０１２３４５６７８９٠١٢٣٤٥६७८९"), min_size=1, max_size=3)
HUGE = st.integers(10**10, 10**300)
interpolated = draw(
    st.sampled_from(["optim.lr", "run_root", "wandb_project", "logger", "train.max_steps"]),
    st.sampled_from(INTERPOLATIONS),
)
huge_size = draw(st.sampled_from(["data.p", "model.n_neurons", "model.d_embed"]), HUGE)
too_many_threads = draw("train.cpu_threads", st.integers(1000, 10**30))
# every run-config override that train refuses, less those that name a sweep's own key (seeds=3)
run_override = BAD.filter(lambda a: a.partition("=")[0].split(".")[0] not in SWEEP_FIELDS)

GRID_KEYS = ["model.n_neurons", "n_neurons", "data.p", "optim.lr", "optim.weight_decay", "train.max_steps"]
bad_grid = st.one_of(
    # values no grid key takes: empty, words, nested, negative, repeated, NaN, foreign digits
    draw(
        st.sampled_from([f"grid.{k}" for k in GRID_KEYS]),
        ["[]", "[abc]", "[[1]]", "[{a: 1}]", "[-1]", "[-1e-3]", "[1, 1]", "[nan]", "[３]", "{a: 1}"],
    ),
    draw(st.sampled_from(["grid.model.n_neurons", "grid.data.p"]), HUGE.map(lambda n: f"[{n}]")),
    draw(identifiers.filter(lambda n: n not in MODADD_NAMES).map(lambda n: f"grid.{n}"), ["[1]", "[a, b]"]),
    draw(st.sampled_from(["grid.train.seed", "grid.task", "grid.preset", "grid"]), ["[1]", "3"]),
    draw(
        st.sampled_from([f"grid.{k}" for k in GRID_KEYS]),
        st.sampled_from(INTERPOLATIONS).map(lambda i: f"[{i}]"),
    ),
)
bad_sweep_key = st.one_of(
    draw("seeds", ["0", "-1", "abc", "1.5", "[]", "[1, 1]", "[-1]", "[x]", "true", "{a: 1}", "[[1]]"]),
    draw("seeds", st.integers(MAX_MODELS + 1, 10**30)),
    draw("seeds", FOREIGN_DIGITS),
    draw(st.sampled_from(["max_models_per_group", "workers", "world_size"]), ["-1", "abc", "1.5", "[1]"]),
    draw(st.sampled_from(["calibration.steps", "calibration.repeats"]), ["0", "-1", "x"]),
    draw(st.sampled_from(["calibration.tolerance", "calibration.warmup_steps"]), ["-1", "x", "[1]"]),
    draw("wait_timeout_s", ["0", "-1", "nan", "x"]),
    draw(st.sampled_from(["phase_diagram.x", "phase_diagram.y"]), ["data.p", "nope", "[1]"]),
    draw("phase_diagram.bars", ["[nope]", "[data.p]", "3"]),
    draw(st.sampled_from(["calibration", "phase_diagram", "base"]), ["3", "abc", "[1]"]),
    draw(st.sampled_from(["task", "preset"]), ["nope", "[1]", ""]),
    draw(st.sampled_from(sorted(SWEEP_FIELDS)), st.sampled_from(INTERPOLATIONS)),
    draw("sweep", ["no_such_sweep", "nope.yaml", "/proc/nonexistent/s.yaml", ""]),
)


def bad_path(blocker: Path) -> st.SearchStrategy:
    """Paths that cannot hold an output folder: a file, below a file, unwritable, too long."""
    return st.sampled_from(
        [str(blocker), f"{blocker}/x", "/proc/nonexistent/x", "/proc/self", "/dev/null", "x" * 300]
    )


FAST_EXAMPLES, SLOW_EXAMPLES = 25, 300  # per command: the default suite's budget, the slow one's


def run_property(test, examples: int, tried: list) -> None:
    """Run a property with this budget; it must have tried mostly distinct cases. The default
    suite's budget draws the same cases every run (CI must not turn red by chance); the slow
    variants draw new ones each time."""
    torch.set_flush_denormal(False)  # after a training run earlier in this process
    checks = list(HealthCheck)
    derandomize = examples <= FAST_EXAMPLES
    settings(max_examples=examples, deadline=None, suppress_health_check=checks, derandomize=derandomize)(
        test
    )()
    print(f"{len(tried)} cases tried, {len(set(tried))} distinct")
    assert len(set(tried)) >= examples // 2


def sweep_property(mini, tmp_path_factory, capsys, examples: int) -> None:
    tried = []
    blocker = tmp_path_factory.mktemp("blocker") / "a_file"
    blocker.write_text("not a directory")

    @given(
        bad=st.one_of(
            run_override,
            interpolated,
            huge_size,
            too_many_threads,
            bad_grid,
            bad_sweep_key,
            draw("out_dir", bad_path(blocker)),
        ),
        # valid extras; a grid key no bad base override names (the grid would replace it)
        good=st.lists(
            st.sampled_from(["seeds=2", "train.max_steps=10", "grid.weight_decay=[0.5,1]"]), max_size=2
        ),
    )
    def check(bad, good):
        tried.append((bad, *good))
        root = tmp_path_factory.mktemp("sweep_out")
        code = S.main([f"sweep={mini}", f"out_dir={root / 'out'}", *good, bad])
        assert_refused(code, capsys, "")
        assert list(root.iterdir()) == [] and blocker.read_text() == "not a directory", bad

    run_property(check, examples, tried)


def test_sweep_bad_arguments_property(mini, tmp_path_factory, capsys):
    sweep_property(mini, tmp_path_factory, capsys, FAST_EXAMPLES)


@pytest.mark.slow
def test_sweep_bad_arguments_property_long(mini, tmp_path_factory, capsys):
    sweep_property(mini, tmp_path_factory, capsys, SLOW_EXAMPLES)


ensemble_option = st.one_of(
    draw(st.sampled_from(["perturb", "threads"]), ["-1", "abc", "1.5", "1e3", "true", "[1]", "{a: 1}", ""]),
    draw(st.sampled_from(["perturb", "threads", "scale"]), FOREIGN_DIGITS),
    draw("perturb", st.integers(10**12, 10**30)),
    draw("threads", st.integers(1000, 10**30)),
    draw("scale", ["-1", "1", "2", "nan", "inf", "-inf", "abc", "[0.1]", ""]),
    draw("precisions", ["", "16", "32,,64", "[32]", "fp8", "32,abc", ","]),
    draw(st.sampled_from(ensemble.ENSEMBLE_KEYS), st.sampled_from(INTERPOLATIONS)),
    draw(st.sampled_from(["resume", "print_config"]), ["true", "/tmp", "x"]),
)


def ensemble_property(tmp_path_factory, capsys, examples: int) -> None:
    tried = []
    blocker = tmp_path_factory.mktemp("blocker") / "a_file"
    blocker.write_text("not a directory")
    ours = set(ensemble.ENSEMBLE_KEYS)

    @given(
        bad=st.one_of(
            BAD.filter(lambda a: a.partition("=")[0] not in ours),
            interpolated,
            huge_size,
            too_many_threads,
            ensemble_option,
            draw("out_dir", bad_path(blocker)),
        ),
        good=st.lists(st.sampled_from(["optim.weight_decay=0.5", "perturb=2", "scale=1e-6"]), max_size=2),
    )
    def check(bad, good):
        tried.append((bad, *good))
        root = tmp_path_factory.mktemp("ensemble_out")
        assert_refused(ensemble.main([*ENSEMBLE, f"out_dir={root / 'out'}", *good, bad]), capsys, "")
        assert list(root.iterdir()) == [] and blocker.read_text() == "not a directory", bad

    run_property(check, examples, tried)


def test_ensemble_bad_arguments_property(tmp_path_factory, capsys):
    ensemble_property(tmp_path_factory, capsys, FAST_EXAMPLES)


@pytest.mark.slow
def test_ensemble_bad_arguments_property_long(tmp_path_factory, capsys):
    ensemble_property(tmp_path_factory, capsys, SLOW_EXAMPLES)


# Sweep directories the explorer must refuse: name -> damage(out_dir)
SWEEP_DAMAGES = {
    "garbage_results": lambda d: (d / "results.csv").write_bytes(GARBAGE),
    "results_without_columns": lambda d: (d / "results.csv").write_text("a,b\n1,2\n"),
    "results_header_only": lambda d: (d / "results.csv").write_text("model_id,min_train_loss\n"),
    "garbage_spec": lambda d: (d / "sweep.yaml").write_bytes(GARBAGE),
    "spec_not_a_mapping": lambda d: (d / "sweep.yaml").write_text("- 1\n"),
    "garbage_histories": lambda d: [p.write_bytes(GARBAGE) for p in (d / "histories").glob("*.npz")],
}
PATHS = [
    "missing",
    "a_file",
    "below_a_file",
    "empty_dir",
    "/proc/self",
    "/proc/nonexistent",
    "/dev/null",
    "x" * 300,
]


def target_for(where: Path, kind: str, name: str, tiny_run: Path, tiny_sweep: Path, garbage: bytes) -> Path:
    """The directory argument of one drawn case, made under `where`."""
    if kind == "run":
        run_dir = damaged(tiny_run, where, name)
        for path in (run_dir / "metrics.csv", run_dir / "config.yaml"):  # the drawn bytes, where garbage went
            if path.read_bytes() == GARBAGE:
                path.write_bytes(b"\xff" + garbage)
        return run_dir
    if kind == "sweep":
        shutil.copytree(tiny_sweep, where / "sweep")
        SWEEP_DAMAGES[name](where / "sweep")
        return where / "sweep"
    (where / "a_file").write_text("not a run")
    (where / "empty_dir").mkdir()
    local = {"missing": "missing", "a_file": "a_file", "below_a_file": "a_file/x", "empty_dir": "empty_dir"}
    return where / local[name] if name in local else Path(name)


def directory_property(command, damages, tiny_run, tiny_sweep, tmp_path_factory, capsys, examples):
    tried = []
    cases = st.one_of(
        st.tuples(st.just("run"), st.sampled_from(damages)),
        st.tuples(st.just("path"), st.sampled_from(PATHS)),
        *([st.tuples(st.just("sweep"), st.sampled_from(sorted(SWEEP_DAMAGES)))] if tiny_sweep else []),
    )

    @given(case=cases, garbage=st.binary(max_size=64))
    def check(case, garbage):
        tried.append((*case, garbage))
        where = tmp_path_factory.mktemp("target")
        target = target_for(where, *case, tiny_run, tiny_sweep, garbage)
        before = snapshot(where)
        assert_refused(command([str(target)]), capsys, str(target)[:40])
        assert snapshot(where) == before, case

    run_property(check, examples, tried)


def test_report_bad_directory_property(tiny_run, tmp_path_factory, capsys):
    directory_property(report.main, sorted(DAMAGES), tiny_run, None, tmp_path_factory, capsys, FAST_EXAMPLES)


@pytest.mark.slow
def test_report_bad_directory_property_long(tiny_run, tmp_path_factory, capsys):
    directory_property(report.main, sorted(DAMAGES), tiny_run, None, tmp_path_factory, capsys, SLOW_EXAMPLES)


def test_explorer_bad_directory_property(tiny_run, tiny_sweep, tmp_path_factory, capsys):
    directory_property(
        explore, EXPLORER_DAMAGES, tiny_run, tiny_sweep, tmp_path_factory, capsys, FAST_EXAMPLES
    )


@pytest.mark.slow
def test_explorer_bad_directory_property_long(tiny_run, tiny_sweep, tmp_path_factory, capsys):
    directory_property(
        explore, EXPLORER_DAMAGES, tiny_run, tiny_sweep, tmp_path_factory, capsys, SLOW_EXAMPLES
    )

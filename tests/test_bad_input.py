"""Property-based: no generated bad override ever reaches the user as a traceback."""

import dataclasses
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from grok_lightning import config as C
from grok_lightning.tasks import TASKS
from grok_lightning.train import main

INT_KEYS = [
    "data.p",
    "model.d_embed",
    "model.n_neurons",
    "train.max_steps",
    "train.steps_per_call",
    "train.seed",
]
POSITIVE_FLOAT_KEYS = ["optim.lr", "optim.eps", "outcome.loss_threshold", "outcome.ratio_threshold"]
CHOICES = {**C.CHOICES, **TASKS["modadd"].choices}
CHOICE_KEYS = list(CHOICES)
SECTIONS = ["data", "model", "optim", "train", "outcome", "callbacks", ""]


def schema_names(node) -> set[str]:
    """Every key and section name of a dataclass schema, nested sections included."""
    names = set()
    for f in dataclasses.fields(node):
        names.add(f.name)
        if dataclasses.is_dataclass(value := getattr(node, f.name)):
            names |= schema_names(value)
    return names


MODADD_NAMES = schema_names(TASKS["modadd"].config_class())
CHOICE_VALUES = {value for values in CHOICES.values() for value in values}

identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)

unknown_key = st.builds(
    lambda section, name, value: f"{section + '.' if section else ''}{name}={value}",
    st.sampled_from(SECTIONS),
    identifiers.filter(lambda n: n not in MODADD_NAMES),
    st.integers(-5, 5),
)
wrong_type = st.builds(
    lambda key, word: f"{key}={word}",
    st.sampled_from(INT_KEYS + POSITIVE_FLOAT_KEYS),
    st.from_regex(r"[a-z]{2,8}", fullmatch=True).filter(
        lambda w: w not in ("nan", "inf", "true", "false", "null", "none", "yes", "no", "on", "off")
    ),
)
impossible_int = st.builds(
    lambda key, v: f"{key}={v}",
    st.sampled_from(["model.d_embed", "model.n_neurons", "train.max_steps", "train.steps_per_call"]),
    st.integers(-(10**6), 0),
)
impossible_float = st.builds(
    lambda key, v: f"{key}={v}",
    st.sampled_from(POSITIVE_FLOAT_KEYS),
    st.one_of(st.floats(max_value=0.0, allow_nan=False), st.just(math.nan), st.just(math.inf)),
)
bad_fraction = st.builds(
    lambda v: f"data.train_fraction={v}",
    st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, allow_infinity=True)),
)
bad_choice = st.builds(
    lambda key, word: f"{key}={word}",
    st.sampled_from(CHOICE_KEYS),
    st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda w: w not in CHOICE_VALUES),
)
not_an_override = st.from_regex(r"[a-z.]{1,12}", fullmatch=True)
# digits of other scripts (Python's int() reads them), nested values where a number goes, a
# boolean key given anything but true / false
foreign_digits = st.builds(
    lambda key, digits: f"{key}={digits}",
    st.sampled_from(INT_KEYS + POSITIVE_FLOAT_KEYS),
    st.text(st.sampled_from("０１２３４５６７８９٠١٢٣٤٥६७८९"), min_size=1, max_size=4),
)
nested = st.builds(
    lambda key, value: f"{key}={value}",
    st.sampled_from(INT_KEYS + POSITIVE_FLOAT_KEYS + ["model.freqs"]),
    st.sampled_from(["[[1]]", "[1, {a: b}]", "{a: 1}", "[x]", "[[]]"]),
)
not_boolean = st.builds(
    lambda key, v: f"{key}={v}",
    st.sampled_from(["data.symmetric", "model.tied_hidden", "model.collapsed_out", "train.progress_bar"]),
    st.one_of(st.integers(2, 10**6), st.integers(-(10**6), -1), st.sampled_from(["0.5", "[true]", "maybe"])),
)

BAD = st.one_of(
    unknown_key,
    wrong_type,
    impossible_int,
    impossible_float,
    bad_fraction,
    bad_choice,
    not_an_override,
    foreign_digits,
    nested,
    not_boolean,
)


def test_the_keys_drawn_from_exist_in_the_schema():
    """A renamed key would otherwise turn these strategies into unknown-key tests without notice."""
    schema = OmegaConf.structured(TASKS["modadd"].config_class)
    for key in INT_KEYS + POSITIVE_FLOAT_KEYS + CHOICE_KEYS + ["data.train_fraction"]:
        assert OmegaConf.select(schema, key, default=None) is not None, key
    assert {"p", "collapsed_out", "top_k", "scalars_every", "loss_threshold"} <= MODADD_NAMES


def test_bad_overrides_give_one_error_line_exit_2_and_write_nothing(tmp_path_factory, capsys):
    # A training run earlier in this process leaves flush-to-zero on (train.flush_denormal), and
    # hypothesis refuses to draw floats then: switch it off for this test, whatever ran before.
    torch.set_flush_denormal(False)
    tried = []

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        bad=BAD,
        good=st.lists(
            st.sampled_from(["logger=csv", "optim.weight_decay=0.5", "train.max_steps=10"]), max_size=2
        ),
    )
    def check(bad, good):
        root = tmp_path_factory.mktemp("runs")
        tried.append(bad)
        code = main(["task=modadd", f"run_root={root}", *good, bad])
        err = capsys.readouterr().err
        assert code == 2, bad
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, (bad, err)
        assert list(root.iterdir()) == []

    check()
    print(f"{len(tried)} bad overrides tried, {len(set(tried))} distinct")
    assert len(set(tried)) >= 60


TINY = ["data.p=11", "model.d_embed=8", "model.n_neurons=4", "model.init=torch", "train.max_steps=20"]
MACHINE_LACKS = {
    "train.accelerator=cuda": not torch.cuda.is_available(),
    "train.accelerator=mps": not torch.backends.mps.is_available(),
}


@pytest.mark.parametrize(
    "bad, named",
    [
        ("train.accelerator=cuda", "train.accelerator"),
        ("train.accelerator=mps", "train.accelerator"),
        ("train.devices=3", "train.devices"),
        ("optim.lr=3e38", "optim.lr"),
        ("optim.lr=${oc.env:HOME}", "optim.lr"),
        ("model.n_neurons=1000000000", "model.n_neurons"),
        ("data.p=1000003", "data.p"),
        ("data.train_fraction=1e-9", "train_fraction"),
        ("run_root={file}/runs", "run_root"),
        # the reliability probe's cases (issue: reliability, round three)
        ("train.max_steps=99999999999999999999999", "train."),
        ("train.max_steps=99999999999999999999999 train.step_cap=0", "train.max_steps"),
        ("data.p=1" + "0" * 200, "data.p"),  # past what a float holds: the memory estimate overflowed
        ("model.freqs=[[1]]", "model.freqs"),
        ("model.freqs=[1,{a:b}]", "model.freqs"),
        ("callbacks.dft_sparsity.top_k=-3", "callbacks.dft_sparsity.top_k"),
        ("data.symmetric=2", "data.symmetric"),
        ("train.max_steps=１００", "train.max_steps"),
        ("preset=", "preset"),
        ("train.cpu_threads=100000", "train.cpu_threads"),
        ("data.p=100000000", "data.p"),
        ("data.op=sub", "data.op"),  # symmetric pairs by default
        ("data.op=div data.p=12 data.symmetric=false", "data.op"),
        ("model.kind=transformer", "model.kind"),  # the main preset's precision is the MLP's
    ],
)
def test_command_lines_that_cannot_run_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, bad, named):
    if not MACHINE_LACKS.get(bad, True):
        pytest.skip(f"this machine has what {bad} asks for")
    root, blocker = tmp_path / "runs", tmp_path / "a_file"
    blocker.write_text("not a directory")
    bad_args = bad.replace("{file}", str(blocker)).split(" ")
    code = main(["task=modadd", f"run_root={root}", "logger=csv", *TINY, *bad_args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert named in err
    assert not root.exists() and blocker.read_text() == "not a directory"

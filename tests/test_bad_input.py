"""Property-based: no generated bad override ever reaches the user as a traceback."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grok_lightning import config as C
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
CHOICE_KEYS = list(C.CHOICES)
SECTIONS = ["data", "model", "optim", "train", "outcome", "callbacks", ""]

identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
known_leaves = {key.split(".")[-1] for key in INT_KEYS + POSITIVE_FLOAT_KEYS + CHOICE_KEYS}

unknown_key = st.builds(
    lambda section, name, value: f"{section + '.' if section else ''}{name}={value}",
    st.sampled_from(SECTIONS),
    identifiers.filter(
        lambda n: (
            n not in known_leaves
            and n not in C.ModAddConfig.__dataclass_fields__
            and n
            not in {
                "p",
                "symmetric",
                "train_fraction",
                "d_embed",
                "n_neurons",
                "embed",
                "tied_hidden",
                "collapsed_hidden",
                "collapsed_out",
                "activation",
                "freqs",
                "init",
                "loss_scale",
                "regularization",
                "weight_decay",
                "beta1",
                "beta2",
                "seed",
                "max_steps",
                "precision",
                "log_every",
                "checkpoint_every",
                "accelerator",
                "devices",
                "flush_denormal",
                "cpu_threads",
                "progress_bar",
                "dft_sparsity",
                "weight_heatmaps",
                "loss_gap",
                "fourier_stars",
                "progress_measures",
                "bit_mass",
                "top_k",
                "loss_threshold",
                "ratio_threshold",
            }
        )
    ),
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
    st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda w: w not in ("auto", "cpu", "gpu")),
)
not_an_override = st.from_regex(r"[a-z.]{1,12}", fullmatch=True)

BAD = st.one_of(
    unknown_key, wrong_type, impossible_int, impossible_float, bad_fraction, bad_choice, not_an_override
)


def test_bad_overrides_give_one_error_line_exit_2_and_write_nothing(tmp_path_factory, capsys):
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

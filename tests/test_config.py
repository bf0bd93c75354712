import pytest

from grok_lightning import config as C
from grok_lightning.train import main


def test_main_preset_values():
    cfg = C.load("modadd")
    assert cfg.preset == "main"
    assert (cfg.data.p, cfg.data.train_fraction, cfg.model.d_embed, cfg.model.n_neurons) == (67, 0.4, 500, 24)
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.beta1, cfg.optim.beta2) == (1e-3, 1.0, 0.9, 0.98)
    assert (cfg.train.max_steps, cfg.train.seed) == (50_000, 165)
    assert C.log_every(cfg) == 100 and C.checkpoint_every(cfg) == 500


def test_overrides_and_presets():
    cfg = C.load("modadd", "reverse_grokking", ["optim.weight_decay=0.5", "data.symmetric=false"])
    assert cfg.model.d_embed == 5 and cfg.optim.weight_decay == 0.5 and cfg.data.symmetric is False


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["model.not_a_key=1"], "not_a_key"),
        (["data.p=abc"], "data.p"),
        (["data.p=1"], "data.p"),
        (["data.train_fraction=1.0"], "data.train_fraction"),
        (["data.train_fraction=0"], "data.train_fraction"),
        (["model.n_neurons=0"], "model.n_neurons"),
        (["optim.lr=-1"], "optim.lr"),
        (["optim.lr=nan"], "optim.lr"),
        (["optim.regularization=l3"], "optim.regularization"),
        (["train.precision=16"], "train.precision"),
        (["nonsense"], "nonsense"),
        (["train.checkpoint_every=15"], "train.checkpoint_every"),
    ],
)
def test_bad_override_names_the_key(overrides, key):
    with pytest.raises(C.ConfigError) as err:
        C.load("modadd", None, overrides)
    msg = str(err.value)
    assert key in msg and "\n" not in msg


def test_unknown_task_and_preset_list_the_choices():
    with pytest.raises(C.ConfigError, match="available tasks: .*modadd"):
        C.load("nope")
    with pytest.raises(C.ConfigError, match="available presets: .*gen_mem_gen.*main"):
        C.load("modadd", "nope")


@pytest.mark.parametrize(
    "argv",
    [
        ["task=modadd", "data.p=1"],
        ["task=modadd", "model.bogus=3"],
        ["task=nope"],
        ["task=modadd", "preset=nope"],
        ["data.p=5"],
        ["resume=/nonexistent/run"],
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(argv, run_root, capsys):
    assert main([*argv, f"run_root={run_root}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not run_root.exists()

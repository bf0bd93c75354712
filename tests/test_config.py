import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from grok_lightning import config as C
from grok_lightning.model import FactoredMLPConfig
from grok_lightning.schema import TrainConfig
from grok_lightning.tasks import TASKS
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


def test_importing_the_tasks_does_not_import_the_config_loader():
    """The import graph is a DAG: tasks own their schemas and checks, config.py finds them."""
    code = "import sys, grok_lightning.tasks; print('grok_lightning.config' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_each_task_owns_its_sections_and_checks():
    assert TASKS["modadd"].config_class.__module__ == "grok_lightning.tasks.modadd"
    assert TASKS["parity"].config_class.__module__ == "grok_lightning.tasks.parity"
    cfg = C.load("modadd")
    assert issubclass(
        OmegaConf.get_type(cfg.model), FactoredMLPConfig
    )  # plus model.kind and model.transformer
    assert OmegaConf.get_type(cfg, "train") is TrainConfig
    # The shared checks name only shared sections; data.* and model.* checks come from the task.
    assert all(key.split(".")[0] not in ("data", "model") for key in [*C.CHOICES, *C.RULES])
    assert "data.n_bits" in TASKS["parity"].rules and "data.n_bits" not in TASKS["modadd"].rules


def test_validate_runs_the_tasks_hook_on_an_edited_config():
    cfg = C.load("parity", None, ["data.n_bits=10", "data.train_size=1000", "data.test_size=24"])
    cfg.data.test_size = 25
    with pytest.raises(C.ConfigError, match="data.test_size=25 cannot be drawn disjoint"):
        C.validate(cfg)
    cfg = C.load("fixed_embed")
    cfg.model.freqs = [40]
    with pytest.raises(C.ConfigError, match=r"model.freqs=\[40\]"):
        C.validate(cfg)

"""The fixed circular embedding task: config, 20 trainable parameters, shared modadd data."""

import pytest
import torch

from grok_lightning import config as C
from grok_lightning.model import circular_embedding
from grok_lightning.tasks import TASKS
from grok_lightning.tasks.modadd_data import ModAddDataModule


def test_preset_is_the_spec_run():
    cfg = C.load("fixed_embed")
    assert cfg.preset == "fixed_embed"
    assert (cfg.data.train_fraction, cfg.model.n_neurons, cfg.model.embed, list(cfg.model.freqs)) == (
        0.3,
        5,
        "fixed",
        [1],
    )
    assert (cfg.optim.weight_decay, cfg.optim.lr) == (1e-3, 1e-2)
    assert (cfg.train.max_steps, cfg.train.seed) == (15000, 86)
    assert TASKS["fixed_embed"].analyses == frozenset({"fourier", "heatmaps"})


def test_only_win_and_wout_train():
    cfg = C.load("fixed_embed")
    task = TASKS["fixed_embed"]
    model = task.build_model(cfg, [86])
    assert sorted(model.weights) == ["hidden", "out"]
    assert model.n_trainable_per_model() == 20
    assert sum(p.numel() for p in model.parameters()) == 20
    torch.testing.assert_close(model.fixed_embed, circular_embedding(67, [1]).to(model.fixed_embed.dtype))
    dm = task.build_datamodule(cfg, [86])
    assert isinstance(dm, ModAddDataModule) and dm.train_targets.shape == (1, int(0.3 * 2278))


def test_two_frequencies_make_a_four_dim_embedding():
    cfg = C.load("fixed_embed", None, ["model.freqs=[1,5]", "model.init=torch"])
    model = TASKS["fixed_embed"].build_model(cfg, [0])
    assert model.weights["hidden"].shape == (1, 4, 5) and model.n_trainable_per_model() == 40


def test_needs_fixed_embed():
    cfg = C.load("fixed_embed", None, ["model.embed=tied"])
    with pytest.raises(C.ConfigError, match="model.embed"):
        TASKS["fixed_embed"].build_model(cfg, [0])


def test_bad_frequency_is_rejected():
    with pytest.raises(C.ConfigError, match="model.freqs"):
        C.load("fixed_embed", None, ["model.freqs=[34]"])

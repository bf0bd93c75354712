"""Sparse parity: seeded disjoint data, the MLP with its bias row, config checks, one short run."""

import json

import pytest
import torch

from grok_lightning import config as C
from grok_lightning.module import build_module
from grok_lightning.objectives import Binary
from grok_lightning.tasks import TASKS
from grok_lightning.tasks.parity import ParityMLPConfig
from grok_lightning.tasks.parity_build import ParityDataModule, ParityMLP, bit_mass, code_bits, distinct_codes
from grok_lightning.train import main


def as_rows(bits: torch.Tensor) -> set:
    return {tuple(row) for row in bits.tolist()}


@pytest.mark.parametrize("n_bits", [6, 30])  # the full-permutation path and the rejection path
def test_data_shapes_targets_and_disjoint_splits(n_bits):
    dm = ParityDataModule(n_bits=n_bits, k=3, train_size=40, test_size=20, seeds=[0, 1])
    (train,), (test,) = dm.train_inputs, dm.test_inputs
    assert train.shape == (2, 40, n_bits) and test.shape == (2, 20, n_bits)
    assert set(train.unique().tolist()) <= {0, 1}
    assert torch.equal(dm.train_targets, train[..., :3].long().sum(-1) % 2)
    assert torch.equal(dm.test_targets, test[..., :3].long().sum(-1) % 2)
    for k in range(2):
        train_rows, test_rows = as_rows(train[k]), as_rows(test[k])
        assert len(train_rows) == 40 and len(test_rows) == 20  # distinct within each set
        assert not train_rows & test_rows  # and no test sequence is a training one


def test_disjoint_even_when_every_sequence_is_used():
    dm = ParityDataModule(n_bits=5, k=2, train_size=20, test_size=12, seeds=[3])
    rows = as_rows(torch.cat([dm.train_inputs[0][0], dm.test_inputs[0][0]]))
    assert len(rows) == 32


def test_data_is_seeded_per_model():
    a = ParityDataModule(n_bits=30, k=3, train_size=50, test_size=10, seeds=[7, 8])
    b = ParityDataModule(n_bits=30, k=3, train_size=50, test_size=10, seeds=[8])
    assert torch.equal(a.train_inputs[0][1], b.train_inputs[0][0])
    assert torch.equal(a.test_inputs[0][1], b.test_inputs[0][0])
    assert not torch.equal(a.train_inputs[0][0], a.train_inputs[0][1])


def test_distinct_codes_and_bits():
    codes = distinct_codes(40, 1000, torch.Generator().manual_seed(0))
    assert len(codes.unique()) == 1000 and int(codes.min()) >= 0 and int(codes.max()) < 2**40
    assert not torch.equal(codes, codes.sort().values)  # random order, not sorted
    assert code_bits(torch.tensor([5]), 4).tolist() == [[1, 0, 1, 0]]
    with pytest.raises(ValueError):
        distinct_codes(3, 9, torch.Generator())


def test_balanced_labels():
    dm = ParityDataModule(n_bits=30, k=3, train_size=1200, test_size=5000, seeds=[0])
    assert 0.45 < dm.test_targets.float().mean() < 0.55


def test_model_shapes_bias_row_and_forward():
    model = ParityMLP(ParityMLPConfig(n_neurons=16), seeds=[0, 1], n_bits=10)
    assert model.W_input.shape == (2, 11, 16) and model.W_output.shape == (2, 16, 1)
    bits = torch.randint(0, 2, (2, 7, 10), dtype=torch.uint8)
    (x,) = model.encode(bits)
    assert x.shape == (2, 7, 11) and torch.all(x[..., -1] == 1)
    logits = model(x)
    assert logits.shape == (2, 7)
    W_in, W_out = model.W_input, model.W_output
    expected = torch.relu(bits.float() @ W_in[:, :-1] + W_in[:, -1:]) @ W_out
    torch.testing.assert_close(logits, expected.squeeze(-1))


def test_model_init_is_per_seed_haiku_linear():
    pair = ParityMLP(ParityMLPConfig(n_neurons=64), seeds=[4, 5], n_bits=30)
    single = ParityMLP(ParityMLPConfig(n_neurons=64), seeds=[5], n_bits=30)
    assert torch.equal(pair.W_input[1], single.W_input[0])
    assert torch.equal(pair.W_output[1], single.W_output[0])
    std = 1 / 31**0.5  # fan_in = n_bits + 1, cut at 2 sigma, not variance-corrected
    assert float(pair.W_input.abs().max()) <= 2 * std
    assert 0.8 * std < float(pair.W_input.std()) < 0.95 * std


def test_float64_precision():
    model = ParityMLP(ParityMLPConfig(n_neurons=4), seeds=[0], n_bits=5, precision="64")
    assert model.W_input.dtype == torch.float64
    assert model.encode(torch.zeros(1, 2, 5, dtype=torch.uint8))[0].dtype == torch.float64


def test_bit_mass():
    W = torch.zeros(2, 31, 4)
    W[0, :3] = 1.0  # all on the relevant bits
    W[1] = 1.0  # uniform over all bits (and the bias row, which is left out)
    relevant, distractor = bit_mass(W, k=3)
    torch.testing.assert_close(relevant, torch.tensor([1.0, 0.1]))
    torch.testing.assert_close(relevant + distractor, torch.ones(2))


def test_task_declares_binary_and_analyses():
    task = TASKS["parity"]
    assert task.analyses == frozenset({"heatmaps", "bit_mass"})
    cfg = C.load("parity")
    assert isinstance(task.build_objective(cfg), Binary)
    assert cfg.preset == "l1" and cfg.data.train_size == 1200 and cfg.data.test_size == 5000
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.beta2, cfg.train.max_steps) == (3e-3, 0.99, 0.98, 20000)


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.k=31", "data.k"),
        ("data.k=0", "data.k"),
        ("data.train_size=0", "data.train_size"),
        ("data.test_size=0", "data.test_size"),
        ("data.n_bits=63", "data.n_bits"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(C.ConfigError, match=key):
        C.load("parity", None, [override])


def test_test_set_must_fit_beside_training_set():
    with pytest.raises(C.ConfigError, match="data.test_size"):
        C.load("parity", None, ["data.n_bits=10", "data.train_size=1000", "data.test_size=25"])
    C.load("parity", None, ["data.n_bits=10", "data.train_size=1000", "data.test_size=24"])


def test_unknown_preset_lists_parity_presets():
    with pytest.raises(C.ConfigError, match="available presets: .*l1.*l2"):
        C.load("parity", "nope")


def test_short_batched_run_learns_a_small_parity():
    """Two models at once on a small problem (8 bits, parity of 2): both fit the training data."""
    cfg = C.load(
        "parity",
        None,
        ["data.n_bits=8", "data.k=2", "data.train_size=200", "data.test_size=56", "model.n_neurons=32"],
    )
    dm, module = build_module(cfg, [0, 1], [1e-2, 1e-2], [1e-4, 1e-4])
    module.attach_data(dm)
    opt = module.configure_optimizers()
    inputs, targets = module.data["train"]
    first = module.objective.loss(module.model(*inputs), targets).detach()
    for _ in range(300):
        loss = module.objective.loss(module.model(*inputs), targets)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    assert torch.all(loss < first / 10)
    assert torch.all(module.measure()[:, 1] == 1.0)  # train accuracy of both models


def test_cli_run_writes_summary(tmp_path):
    rc = main(
        [
            "task=parity",
            "logger=csv",
            f"run_root={tmp_path}",
            "train.max_steps=40",
            "train.progress_bar=false",
            "data.test_size=100",
        ]
    )
    assert rc == 0
    (summary_path,) = tmp_path.glob("parity/*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["steps_trained"] == 40 and 0.0 <= summary["final"]["test/acc"] <= 1.0


def test_build_model_takes_the_model_section_whole_and_refuses_original():
    small = ["data.n_bits=6", "model.n_neurons=5", "data.train_size=20", "data.test_size=20"]
    cfg = C.load("parity", None, small)
    model = TASKS["parity"].build_model(cfg, [0])
    assert model.cfg == ParityMLPConfig(n_neurons=5) and model.W_input.shape == (1, 7, 5)
    cfg = C.load("parity", None, ["model.init=original"])
    with pytest.raises(C.ConfigError, match="model.init='original': parity has no original draw"):
        TASKS["parity"].build_model(cfg, [0])

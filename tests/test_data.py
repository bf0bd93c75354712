import numpy as np
import pytest
import torch

from grok_lightning.tasks.modadd import all_pairs
from grok_lightning.tasks.modadd_data import ModAddDataModule
from tests.conftest import TINY


def test_symmetric_pairs_order_and_count():
    pairs = all_pairs(67, symmetric=True)
    assert len(pairs) == 67 * 68 // 2 == 2278
    assert pairs[:3].tolist() == [[0, 0], [0, 1], [0, 2]] and pairs[67].tolist() == [1, 1]
    assert len(all_pairs(67, symmetric=False)) == 67**2


def test_main_split_matches_numpy_permutation():
    dm = ModAddDataModule(67, 0.4, seeds=[165])
    assert dm.train_inputs[0].shape == (1, 911) and dm.test_inputs[0].shape == (1, 1367)
    pairs = all_pairs(67, True)
    perm = np.random.RandomState(165).permutation(2278)
    train = torch.stack(dm.train_inputs, -1)[0].numpy()
    test = torch.stack(dm.test_inputs, -1)[0].numpy()
    assert (train == pairs[perm[:911]]).all() and (test == pairs[perm[911:]]).all()
    assert (dm.train_targets[0].numpy() == pairs[perm[:911]].sum(1) % 67).all()


def test_each_model_has_its_own_split():
    dm = ModAddDataModule(11, 0.5, seeds=[1, 2, 1])
    a = dm.train_inputs[0]
    assert torch.equal(a[0], a[2]) and not torch.equal(a[0], a[1])


def _split_and_weights(*overrides, seeds=(3,)):
    """(train pairs [K, n, 2], embedding [K, p, d]) of a tiny modadd config built for `seeds`."""
    from grok_lightning import config as C
    from grok_lightning.module import build_module

    cfg = C.load("modadd", None, [*TINY, *overrides])
    dm, module = build_module(cfg, list(seeds), [1e-3] * len(seeds), [1.0] * len(seeds))
    return torch.stack(dm.train_inputs, -1), module.model.weights["embed"].detach()


def test_data_seed_default_is_the_runs_own_split():
    pairs, _ = _split_and_weights(seeds=(3, 4))
    assert torch.equal(pairs, _split_and_weights("data.seed=null", seeds=(3, 4))[0])
    reference = ModAddDataModule(11, 0.4, seeds=[3, 4])  # the split as it always was: one per model seed
    assert torch.equal(pairs, torch.stack(reference.train_inputs, -1))
    assert not torch.equal(pairs[0], pairs[1])


def test_data_seed_sets_the_split_and_train_seed_the_weights():
    pairs, weights = _split_and_weights("data.seed=7", seeds=(3,))
    split_of_7, weights_of_7 = _split_and_weights(seeds=(7,))
    split_of_3, weights_of_3 = _split_and_weights(seeds=(3,))
    assert torch.equal(pairs, split_of_7) and not torch.equal(pairs, split_of_3)
    assert torch.equal(weights, weights_of_3) and not torch.equal(weights, weights_of_7)


def test_data_seed_gives_every_model_of_a_batch_the_same_split():
    pairs, weights = _split_and_weights("data.seed=7", seeds=(1, 2, 3))
    assert all(torch.equal(pairs[k], _split_and_weights(seeds=(7,))[0][0]) for k in range(3))
    assert not torch.equal(weights[0], weights[1])


@pytest.mark.parametrize("value", ["-1", str(2**32), "1.5", "abc"])
def test_data_seed_out_of_range_is_a_config_error(value):
    from grok_lightning import config as C

    with pytest.raises(C.ConfigError, match="data.seed"):
        C.load("modadd", None, [f"data.seed={value}"])

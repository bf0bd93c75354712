import numpy as np
import torch

from grok_lightning.tasks.modadd import ModAddDataModule, all_pairs


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

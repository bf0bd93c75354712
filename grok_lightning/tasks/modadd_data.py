"""Modular addition's data: one seeded split of the operation's pairs per model, as tensors
(grok_lightning.tasks.modadd holds the config and builds this)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from grok_lightning.tasks import operations
from grok_lightning.tasks.datamodule import FullBatchDataModule


def split_indices(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The original's split: the first int(train_fraction * n) of RandomState(seed).permutation(n)."""
    perm = np.random.RandomState(seed).permutation(n)
    n_train = int(train_fraction * n)
    return perm[:n_train], perm[n_train:]


class ModAddDataModule(FullBatchDataModule):
    """One split per entry of `seeds` (the split seeds: the models' own seeds unless data.seed is set)."""

    def __init__(
        self, p: int, train_fraction: float, seeds: Sequence[int], symmetric: bool = True, op: str = "add"
    ):
        self.p, self.train_fraction, self.symmetric = p, train_fraction, symmetric
        self.operation = operations.get(op)
        self.op = self.operation.name
        if self.operation.needs_prime and not operations.is_prime(p):
            raise ValueError(f"operation {self.op} needs a prime p; {p} is not prime")
        super().__init__(seeds)

    def build(self) -> None:
        pairs = torch.as_tensor(operations.pairs(self.p, self.operation, self.symmetric))
        n = len(pairs)
        n_train = int(self.train_fraction * n)
        if n_train < 1 or n_train >= n:
            raise ValueError(
                f"train_fraction {self.train_fraction} of {n} pairs leaves an empty train or test set"
            )
        splits = [split_indices(n, self.train_fraction, s) for s in self.seeds]
        train = pairs[torch.as_tensor(np.stack([tr for tr, _ in splits]))]  # [K, n_train, 2]
        test = pairs[torch.as_tensor(np.stack([te for _, te in splits]))]
        self.train_inputs, self.test_inputs = (train[..., 0], train[..., 1]), (test[..., 0], test[..., 1])
        self.train_targets = self.operation.fn(train[..., 0], train[..., 1], self.p)
        self.test_targets = self.operation.fn(test[..., 0], test[..., 1], self.p)

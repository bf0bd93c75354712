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
    """One split per entry of `seeds` (the split seeds: the models' own seeds unless data.seed is set).

    split="numpy": split_indices (the original notebooks'). split="grokfast": Grokfast's main.py,
    where one torch generator seeded with the seed first draws the decoder's initial weights, then
    torch.randperm(n) (the first int(train_fraction * n) train), then each epoch's shuffle; `decoder`
    (a DecoderConfig) sizes those initial draws."""

    def __init__(
        self,
        p: int,
        train_fraction: float,
        seeds: Sequence[int],
        symmetric: bool = True,
        op: str = "add",
        *,
        nonzero_b: bool = False,
        split: str = "numpy",
        decoder=None,
    ):
        self.p, self.train_fraction, self.symmetric = p, train_fraction, symmetric
        self.operation = operations.get(op)
        self.op = self.operation.name
        self.nonzero_b, self.split, self.decoder = nonzero_b, split, decoder
        if self.operation.needs_prime and not operations.is_prime(p):
            raise ValueError(f"operation {self.op} needs a prime p; {p} is not prime")
        if split not in ("numpy", "grokfast") or (split == "grokfast" and decoder is None):
            raise ValueError(f"split {split!r}: numpy, or grokfast with the decoder's settings")
        super().__init__(seeds)

    def _after_init(self, seed: int) -> torch.Generator:
        """Seed `seed`'s generator after the decoder's initial draws (Grokfast's global stream)."""
        from grok_lightning.decoder import original_draws

        gen = torch.Generator().manual_seed(int(seed))
        original_draws(self.decoder, self.p, gen)
        return gen

    def _split(self, n: int, seed: int, gen=None) -> tuple[np.ndarray, np.ndarray]:
        if self.split == "numpy":
            return split_indices(n, self.train_fraction, seed)
        perm = torch.randperm(n, generator=gen).numpy()
        n_train = int(self.train_fraction * n)
        return perm[:n_train], perm[n_train:]

    def build(self) -> None:
        pairs = operations.pairs(self.p, self.operation, self.symmetric, self.nonzero_b)
        pairs = torch.as_tensor(pairs)
        n = len(pairs)
        n_train = int(self.train_fraction * n)
        if n_train < 1 or n_train >= n:
            raise ValueError(
                f"train_fraction {self.train_fraction} of {n} pairs leaves an empty train or test set"
            )
        gens = (
            [self._after_init(s) for s in self.seeds]
            if self.split == "grokfast"
            else [None] * len(self.seeds)
        )
        splits = [self._split(n, s, g) for s, g in zip(self.seeds, gens)]
        train = pairs[torch.as_tensor(np.stack([tr for tr, _ in splits]))]  # [K, n_train, 2]
        test = pairs[torch.as_tensor(np.stack([te for _, te in splits]))]
        self.train_inputs, self.test_inputs = (train[..., 0], train[..., 1]), (test[..., 0], test[..., 1])
        self.train_targets = self.operation.fn(train[..., 0], train[..., 1], self.p)
        self.test_targets = self.operation.fn(test[..., 0], test[..., 1], self.p)

    def shuffle_generators(self) -> list[torch.Generator]:
        """grokfast: the epochs' shuffles continue the stream that drew the weights and the split."""
        if self.split != "grokfast":
            return super().shuffle_generators()
        n = len(operations.pairs(self.p, self.operation, self.symmetric, self.nonzero_b))
        gens = [self._after_init(s) for s in self.seeds]
        for g in gens:
            torch.randperm(n, generator=g)  # the split's draw
        return gens

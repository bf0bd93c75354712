"""The DataModule every task's data share: the whole set as tensors with a leading model dimension,
moved to the model's device once; the loader only counts the training_step calls of one long epoch
(grok_lightning.tasks.base has the rest of what a task declares). Every optimiser step sees the whole
training set, unless train.batch_size sets minibatches: then each model's set is reshuffled every
epoch and cut into batches of that size (the last one smaller), as a shuffled loader without
drop_last (Grokfast's main.py)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import lightning as L
import torch


class Ticks:
    """An iterable of n dummy batches: one long epoch of n training_step calls."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(range(self.n))


class FullBatchDataModule(L.LightningDataModule):
    """Subclasses fill train_inputs / train_targets / test_inputs / test_targets in `build()`:
    raw inputs (tuples of [K, N, ...] tensors, encoded by the model) and targets [K, N]."""

    def __init__(self, seeds: Sequence[int]):
        super().__init__()
        self.seeds = [int(s) for s in seeds]
        self.n_calls = 1
        self.batch_size = 0  # 0: full batch; set from train.batch_size (module.build_module)
        self._order: Optional[tuple] = None  # (epoch, its permutations [K, n_train], generators)
        self.train_inputs: tuple[torch.Tensor, ...] = ()
        self.test_inputs: tuple[torch.Tensor, ...] = ()
        self.train_targets = self.test_targets = torch.empty(0)
        self.build()

    def build(self) -> None:
        raise NotImplementedError

    def train_dataloader(self) -> Ticks:
        return Ticks(self.n_calls)

    def shuffle_generators(self) -> list[torch.Generator]:
        """One generator per model for the epochs' shuffles, at the start of its stream: seeded with
        the model's split seed (a task may continue another stream: modadd's data.split=grokfast)."""
        return [torch.Generator().manual_seed(s) for s in self.seeds]

    def batch_indices(self, step: int) -> Optional[torch.Tensor]:
        """The training examples update `step` (0-based) sees, [K, batch] indices into each model's
        set, or None for the full batch. Epoch e is the e-th randperm of each model's generator, so
        the order is a function of the step alone (a resume replays the epochs before it)."""
        if not self.batch_size:
            return None
        n = self.train_targets.shape[1]
        epoch, j = divmod(step, math.ceil(n / self.batch_size))
        if self._order is None or self._order[0] > epoch:  # a first call, or a step back (resume)
            self._order = (-1, None, self.shuffle_generators())
        e, perms, gens = self._order
        while e < epoch:
            perms, e = torch.stack([torch.randperm(n, generator=g) for g in gens]), e + 1
        self._order = (e, perms, gens)
        return perms[:, j * self.batch_size : (j + 1) * self.batch_size]

"""The full-batch DataModule every task's data share: the whole set as tensors with a leading model
dimension, moved to the model's device once; the loader only counts the training_step calls of one
long epoch (grok_lightning.tasks.base has the rest of what a task declares)."""

from __future__ import annotations

from typing import Sequence

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
        self.train_inputs: tuple[torch.Tensor, ...] = ()
        self.test_inputs: tuple[torch.Tensor, ...] = ()
        self.train_targets = self.test_targets = torch.empty(0)
        self.build()

    def build(self) -> None:
        raise NotImplementedError

    def train_dataloader(self) -> Ticks:
        return Ticks(self.n_calls)

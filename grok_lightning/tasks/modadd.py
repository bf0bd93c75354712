"""Modular addition: y = (a + b) mod p, full batch, seeded split (docs/experiments.md, "Modular addition")."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from omegaconf import DictConfig

from grok_lightning.config import ConfigError, ModAddConfig
from grok_lightning.model import FactoredMLP
from grok_lightning.objectives import Multiclass
from grok_lightning.original_init import MissingExtraError, load_original_params
from grok_lightning.tasks.base import FullBatchDataModule, Task


def all_pairs(p: int, symmetric: bool) -> np.ndarray:
    """[N, 2] pairs: unordered a <= b listed a-outer b-inner (p(p+1)/2), or all p^2 ordered."""
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    a, b = a.ravel(), b.ravel()
    keep = a <= b if symmetric else np.ones_like(a, dtype=bool)
    return np.stack([a[keep], b[keep]], axis=1)


def split_indices(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The original's split: the first int(train_fraction * n) of RandomState(seed).permutation(n)."""
    perm = np.random.RandomState(seed).permutation(n)
    n_train = int(train_fraction * n)
    return perm[:n_train], perm[n_train:]


class ModAddDataModule(FullBatchDataModule):
    def __init__(self, p: int, train_fraction: float, seeds: Sequence[int], symmetric: bool = True):
        self.p, self.train_fraction, self.symmetric = p, train_fraction, symmetric
        super().__init__(seeds)

    def build(self) -> None:
        pairs = torch.as_tensor(all_pairs(self.p, self.symmetric))
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
        self.train_targets = (train[..., 0] + train[..., 1]) % self.p
        self.test_targets = (test[..., 0] + test[..., 1]) % self.p


def build_datamodule(cfg: DictConfig, seeds: Sequence[int]) -> ModAddDataModule:
    return ModAddDataModule(cfg.data.p, cfg.data.train_fraction, seeds, cfg.data.symmetric)


def build_model(cfg: DictConfig, seeds: Sequence[int]) -> FactoredMLP:
    m = cfg.model
    model = FactoredMLP(
        seeds=seeds,
        p=cfg.data.p,
        d_embed=m.d_embed,
        n_neurons=m.n_neurons,
        embed=m.embed,
        tied_hidden=m.tied_hidden,
        collapsed_hidden=m.collapsed_hidden,
        collapsed_out=m.collapsed_out,
        activation=m.activation,
        freqs=list(m.freqs),
        precision=cfg.train.precision,
    )
    if m.init == "original":
        load_original_init(model, cfg, seeds)
    return model


def load_original_init(model: FactoredMLP, cfg: DictConfig, seeds: Sequence[int]) -> None:
    """Each model's initial weights as the original JAX/Haiku notebooks drew them for its seed:
    stored files for the presets, a fresh draw (the `original` extra) for anything else."""
    m = cfg.model
    fixed = m.embed == "fixed"
    for k, seed in enumerate(seeds):
        try:
            arrays = load_original_params(
                seed=seed,
                p=cfg.data.p,
                d_embed=model.d_embed,
                n_neurons=m.n_neurons,
                embed="tied" if fixed else m.embed,
                tied_hidden=m.tied_hidden,
                collapsed_hidden=m.collapsed_hidden,
                collapsed_out=m.collapsed_out,
                fixed_embed=fixed,
                freqs=tuple(m.freqs),
            )
        except MissingExtraError as exc:
            raise ConfigError(f"model.init=original for this configuration: {exc}") from None
        model.load_model_params(k, arrays)


def build_objective(cfg: DictConfig) -> Multiclass:
    p = cfg.data.p
    return Multiclass(n_classes=p, scale=1.0 / p if cfg.model.loss_scale == "per_class" else 1.0)


TASK = Task(
    name="modadd",
    config_class=ModAddConfig,
    build_datamodule=build_datamodule,
    build_model=build_model,
    build_objective=build_objective,
    analyses=frozenset({"fourier", "heatmaps"}),
)

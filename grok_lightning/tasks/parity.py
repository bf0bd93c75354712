"""Sparse parity, "1s and 0s" (docs/experiments.md, "Sparse parity"): label = parity of the
first k of n_bits random bits.

Data: per model seed, a fixed training set of `train_size` sequences and a test set of `test_size`
sequences. All train + test sequences are distinct, so the test set never contains a training
sequence (the original's choice is unknown; disjoint sets make test accuracy a clean measure of
generalisation). Model: a one-layer ReLU MLP with one output logit; W_input has n_bits + 1 rows,
the last one fed a constant 1, so it acts as a trained bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from omegaconf import DictConfig

from grok_lightning.model_configs import ParityMLPConfig
from grok_lightning.schema import AT_LEAST_ONE, Choices, ConfigError, Rules, RunConfig
from grok_lightning.tasks.base import Task, section_as

# The config, its checks and the Task are read without torch; the data and the MLP import it when
# built (grok_lightning.tasks.parity_build).


@dataclass
class ParityData:
    n_bits: int = 30
    k: int = 3
    train_size: int = 1200  # fixed training set, full batch
    test_size: int = 5000  # disjoint from the training set


@dataclass
class ParityConfig(RunConfig):
    data: ParityData = field(default_factory=ParityData)
    model: ParityMLPConfig = field(default_factory=ParityMLPConfig)


# model.init=original passes here and is refused, with the reason, when the model is built.
CHOICES: Choices = {"model.init": ("torch", "original")}

RULES: Rules = {
    "data.n_bits": (lambda v: 1 <= v <= 62, "must be in [1, 62] (sequences are drawn as int64 codes)"),
    "data.k": AT_LEAST_ONE,
    "data.train_size": AT_LEAST_ONE,
    "data.test_size": AT_LEAST_ONE,
    "model.n_neurons": AT_LEAST_ONE,
}


def validate(cfg: DictConfig) -> None:
    """k relevant bits must exist, and the test set must fit beside the training set, disjoint."""
    d = cfg.data
    if d.k > d.n_bits:
        raise ConfigError(f"data.k={d.k} must be <= data.n_bits={d.n_bits}")
    if 2**d.n_bits - d.train_size < d.test_size:
        raise ConfigError(
            f"data.test_size={d.test_size} cannot be drawn disjoint from "
            f"data.train_size={d.train_size} sequences: only 2**{d.n_bits} = {2**d.n_bits} exist"
        )


def build_datamodule(cfg: DictConfig, seeds: Sequence[int]):
    from grok_lightning.tasks.parity_build import ParityDataModule

    d = cfg.data
    return ParityDataModule(d.n_bits, d.k, d.train_size, d.test_size, seeds)


def build_model(cfg: DictConfig, seeds: Sequence[int]):
    from grok_lightning.tasks.parity_build import ParityMLP

    settings = section_as(cfg.model, ParityMLPConfig)
    if settings.init != "torch":
        raise ConfigError(f"model.init={settings.init!r}: parity has no original draw; use torch")
    return ParityMLP(settings, seeds=seeds, n_bits=cfg.data.n_bits, precision=cfg.train.precision)


def build_objective(cfg: DictConfig):
    from grok_lightning.objectives import Binary

    return Binary()


def memory_elements(cfg: DictConfig) -> float:
    """A rough upper bound of a single run's float64 elements (see Task.memory_elements)."""
    d, m = cfg.data, cfg.model
    rows = d.train_size + d.test_size
    return 3 * rows * (d.n_bits + m.n_neurons + 2) + 4 * (d.n_bits + 2) * m.n_neurons


SIZE_KEYS = ("model.n_neurons", "data.n_bits", "data.train_size", "data.test_size")


TASK = Task(
    name="parity",
    config_class=ParityConfig,
    build_datamodule=build_datamodule,
    build_model=build_model,
    build_objective=build_objective,
    analyses=frozenset({"heatmaps", "bit_mass"}),
    choices=CHOICES,
    rules=RULES,
    validate=validate,
    memory_elements=memory_elements,
    size_keys=SIZE_KEYS,
)

"""The 20-parameter model on a circle (docs/experiments.md, "Fixed circular embedding"):
modular addition whose embedding is the constant cos/sin circle of `model.freqs`; only Win and Wout train.

Same data, model and loss as modadd (reused, not copied); this task only pins embed=fixed.
"""

from __future__ import annotations

from typing import Sequence

from omegaconf import DictConfig

from grok_lightning.schema import ConfigError
from grok_lightning.tasks import modadd
from grok_lightning.tasks.base import Task


def validate(cfg: DictConfig) -> None:
    if cfg.model.kind != "mlp":
        raise ConfigError(
            f"model.kind={cfg.model.kind}: fixed_embed trains the MLP on the fixed circle (use modadd)"
        )
    modadd.validate(cfg)


def build_model(cfg: DictConfig, seeds: Sequence[int]):
    if cfg.model.embed != "fixed":
        raise ConfigError(f"model.embed={cfg.model.embed!r}: fixed_embed needs embed=fixed (or use modadd)")
    return modadd.build_model(cfg, seeds)


TASK = Task(
    name="fixed_embed",
    config_class=modadd.ModAddConfig,
    build_datamodule=modadd.build_datamodule,
    build_model=build_model,
    build_objective=modadd.build_objective,
    analyses=frozenset({"fourier", "heatmaps"}),
    choices=modadd.CHOICES,
    rules=modadd.RULES,
    validate=validate,
    memory_elements=modadd.memory_elements,
    size_keys=modadd.SIZE_KEYS,
)

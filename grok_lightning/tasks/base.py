"""What every task declares (the full-batch DataModule they share is grok_lightning.tasks.datamodule).

A task owns its config schema (a RunConfig with its `data` and `model` sections), the value checks
on those keys and any cross-key check; grok_lightning.config finds them here, and no task imports
grok_lightning.config. A task builds K models' data (one seed each) as tensors with a leading model
dimension, and its model. Data never go through a DataLoader: the whole set is moved to the model's
device once and every optimiser step sees all of it, as in the original notebooks. The loader only
counts the training_step calls of one long epoch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, TypeVar

from omegaconf import DictConfig, OmegaConf

from grok_lightning.schema import Choices, Rules

Section = TypeVar("Section")


def section_as(node: DictConfig, cls: type[Section]) -> Section:
    """A validated config section as its dataclass (what a model takes whole)."""
    value = OmegaConf.to_object(node)
    if type(value) is cls:
        return value
    # a section merged without its schema (a dict), or a wider one (modadd's model section holds
    # the MLP's keys and model.kind / model.transformer): the keys this dataclass has
    items = value if isinstance(value, dict) else dataclasses.asdict(value)
    return cls(**{f.name: items[f.name] for f in dataclasses.fields(cls) if f.name in items})


@dataclass(frozen=True)
class Task:
    """name -> config schema and its checks, data and model builders, objective, and the analyses
    that apply."""

    name: str
    config_class: type
    build_datamodule: Callable[[DictConfig, Sequence[int]], Any]  # a tasks.datamodule.FullBatchDataModule
    build_model: Callable[[DictConfig, Sequence[int]], Any]  # a torch.nn.Module
    build_objective: Callable[[DictConfig], Any]
    # Which analysis callbacks apply ("fourier", "heatmaps", "bit_mass", ...): callbacks ask this,
    # never the task's name.
    analyses: frozenset = field(default_factory=frozenset)
    # where the model a config picks decides them (modadd's model.kind): cfg -> analyses
    select_analyses: Optional[Callable[[DictConfig], frozenset]] = None
    # Checks on the task's own keys (data.*, model.*), run after the shared ones of
    # grok_lightning.schema; `validate` raises ConfigError for what needs several keys at once.
    choices: Choices = field(default_factory=dict)
    rules: Rules = field(default_factory=dict)
    validate: Optional[Callable[[DictConfig], None]] = None
    # What the machine check (grok_lightning.machine) asks: a rough upper bound of a single run's
    # float64 elements (data, activations and logits forward and backward, parameters with gradients
    # and Adam moments), and the keys that size a run, in the order the check names them.
    memory_elements: Optional[Callable[[DictConfig], float]] = None
    size_keys: tuple = ()

    def analyses_for(self, cfg: Optional[DictConfig]) -> frozenset:
        """The analyses that apply to this config's model (the task's own when it has one model)."""
        if cfg is None or self.select_analyses is None:
            return self.analyses
        return self.select_analyses(cfg)

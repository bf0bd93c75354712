"""Modular addition: y = (a + b) mod p, full batch, seeded split (docs/experiments.md, "Modular addition")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from grok_lightning.model_configs import (
    ACTIVATIONS,
    EMBED_MODES,
    DecoderConfig,
    FactoredMLPConfig,
    TransformerConfig,
)
from grok_lightning.schema import AT_LEAST_ONE, Choices, ConfigError, Rules, RunConfig
from grok_lightning.tasks import operations
from grok_lightning.tasks.base import Task, section_as

# The config, its checks and the Task are read without torch (a config error answers at once); the
# data, models and objective import it when built (grok_lightning.tasks.modadd_data).


@dataclass
class ModAddData:
    p: int = 67
    op: str = "add"  # the operation mod p: a name of grok_lightning.tasks.operations.OPS
    symmetric: bool = True  # only pairs a <= b, as every original preset (symmetric ops only)
    train_fraction: float = 0.4
    seed: Optional[int] = None  # the split's seed; None: the run's train.seed. Set: every model of a
    # batch gets this one split, so a sweep can cross splits (grid.data.seed) with initialisations (seeds)
    nonzero_b: bool = False  # leave out the pairs with b = 0 (Grokfast's multiplication table)
    split: str = "numpy"  # numpy: RandomState(seed).permutation, the original notebooks' | grokfast:
    # torch.randperm from the seed's stream after model.kind=decoder's initial draws (Grokfast's main.py)


@dataclass
class ModAddModel(FactoredMLPConfig):
    """The factored MLP's keys, plus which model trains: the MLP (default), the transformer of
    Nanda et al. 2023 (model.transformer.*, grok_lightning.transformer) or the two-layer decoder of
    Grokfast's run (model.decoder.*, grok_lightning.decoder)."""

    kind: str = "mlp"  # mlp | transformer | decoder
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)


@dataclass
class ModAddConfig(RunConfig):
    data: ModAddData = field(default_factory=ModAddData)
    model: ModAddModel = field(default_factory=ModAddModel)


CHOICES: Choices = {
    "data.op": tuple(operations.OPS),
    "model.embed": EMBED_MODES,
    "model.activation": ACTIVATIONS,
    "model.kind": ("mlp", "transformer", "decoder"),
    "data.split": ("numpy", "grokfast"),
    "model.init": ("torch", "original"),
    "model.loss_scale": ("per_class", "mean"),
}

RULES: Rules = {
    "data.p": (lambda v: v >= 2, "must be >= 2"),
    "data.train_fraction": (lambda v: 0 < v < 1, "must be in (0, 1)"),
    "data.seed": (lambda v: 0 <= v < 2**32, "must be in [0, 2**32) (numpy's RandomState seeds)"),
    "model.d_embed": AT_LEAST_ONE,
    "model.n_neurons": AT_LEAST_ONE,
    "model.transformer.d_model": AT_LEAST_ONE,
    "model.transformer.n_heads": AT_LEAST_ONE,
    "model.transformer.d_head": AT_LEAST_ONE,
    "model.transformer.d_mlp": AT_LEAST_ONE,
    "model.decoder.d_model": AT_LEAST_ONE,
    "model.decoder.n_layers": AT_LEAST_ONE,
    "model.decoder.n_heads": AT_LEAST_ONE,
    "model.decoder.d_mlp": AT_LEAST_ONE,
}

TRANSFORMER_PRECISIONS = ("32", "64")


def validate(cfg: DictConfig) -> None:
    """The operation must be defined mod p (division needs a prime p) and, with data.symmetric, give
    f(a, b) == f(b, a); the fixed circle's frequencies must exist mod p, and it must leave something to
    train."""
    d = cfg.data
    op = operations.get(OmegaConf.select(d, "op", default="add"))  # its name is already one of CHOICES
    if op.needs_prime and not operations.is_prime(d.p):
        raise ConfigError(f"data.op={op.name} needs a prime data.p; {d.p} is not prime")
    if d.symmetric and not op.symmetric:
        raise ConfigError(f"data.op={op.name} is not symmetric: set data.symmetric=false")
    m = cfg.model
    freqs = list(m.freqs)
    if not all(type(f) is int for f in freqs):
        raise ConfigError(f"model.freqs={freqs} must be a list of whole numbers")
    symmetric_input = m.embed in ("tied", "input_tied", "fixed") and m.tied_hidden
    if not op.symmetric and symmetric_input and OmegaConf.select(m, "kind", default="mlp") == "mlp":
        raise ConfigError(
            f"data.op={op.name} is not symmetric, but this MLP's input is (one-hot a + one-hot b through "
            "one embedding and one Win): set model.tied_hidden=false or model.embed=untied"
        )
    kind = OmegaConf.select(m, "kind", default="mlp")
    if OmegaConf.select(d, "split", default="numpy") == "grokfast" and kind != "decoder":
        raise ConfigError(
            "data.split=grokfast draws the split after model.kind=decoder's initial weights: "
            "set model.kind=decoder or data.split=numpy"
        )
    if kind in ("transformer", "decoder"):
        if cfg.train.precision not in TRANSFORMER_PRECISIONS:
            raise ConfigError(
                f"train.precision={cfg.train.precision} is not available for model.kind={kind} "
                f"(one of {', '.join(TRANSFORMER_PRECISIONS)}; preset={kind} sets its own)"
            )
        if m.init != "torch":
            raise ConfigError(
                f"model.init=original exists only for the MLP; model.kind={kind} draws with torch"
            )
        if kind == "decoder" and m.decoder.d_model % m.decoder.n_heads:
            raise ConfigError(
                f"model.decoder.d_model={m.decoder.d_model} must be a multiple of "
                f"model.decoder.n_heads={m.decoder.n_heads}"
            )
        return
    if m.embed != "fixed":
        return
    if not m.freqs or any(f < 1 or f > (cfg.data.p - 1) // 2 for f in m.freqs):
        raise ConfigError(f"model.freqs={list(m.freqs)} must be frequencies in 1..(p-1)//2")
    if m.collapsed_hidden and m.collapsed_out and 2 * len(m.freqs) == m.n_neurons:
        raise ConfigError(
            "model.embed=fixed with collapsed_hidden, collapsed_out and n_neurons == 2 * len(freqs) "
            "leaves nothing to train"
        )


def all_pairs(p: int, symmetric: bool) -> np.ndarray:
    """[N, 2] pairs of addition: unordered a <= b listed a-outer b-inner (p(p+1)/2), or all p^2 ordered."""
    return operations.pairs(p, "add", symmetric)


def split_seeds(cfg: DictConfig, seeds: Sequence[int]) -> list[int]:
    """The split seed of each model: data.seed for all of them when set, else each model's own seed."""
    return [int(s) for s in seeds] if cfg.data.seed is None else [int(cfg.data.seed)] * len(seeds)


def build_datamodule(cfg: DictConfig, seeds: Sequence[int]):
    from grok_lightning.tasks.modadd_data import ModAddDataModule

    op = OmegaConf.select(cfg, "data.op", default="add")
    d = cfg.data
    split = OmegaConf.select(cfg, "data.split", default="numpy")
    return ModAddDataModule(
        d.p,
        d.train_fraction,
        split_seeds(cfg, seeds),
        d.symmetric,
        op,
        nonzero_b=bool(OmegaConf.select(cfg, "data.nonzero_b", default=False)),
        split=split,
        decoder=section_as(cfg.model.decoder, DecoderConfig) if split == "grokfast" else None,
    )


def build_model(cfg: DictConfig, seeds: Sequence[int]):
    from grok_lightning.model import FactoredMLP

    kind = OmegaConf.select(cfg, "model.kind", default="mlp")
    if kind == "transformer":
        from grok_lightning.transformer import BatchedTransformer

        settings = section_as(cfg.model.transformer, TransformerConfig)
        return BatchedTransformer(settings, seeds=seeds, p=cfg.data.p, precision=cfg.train.precision)
    if kind == "decoder":
        from grok_lightning.decoder import BatchedDecoder

        settings = section_as(cfg.model.decoder, DecoderConfig)
        return BatchedDecoder(settings, seeds=seeds, p=cfg.data.p, precision=cfg.train.precision)
    settings = section_as(cfg.model, FactoredMLPConfig)
    model = FactoredMLP(settings, seeds=seeds, p=cfg.data.p, precision=cfg.train.precision)
    if settings.init == "original":
        load_original_init(model, seeds)
    return model


def load_original_init(model, seeds: Sequence[int]) -> None:
    """Each model's initial weights (a FactoredMLP's) as the original JAX/Haiku notebooks drew them
    for its seed: stored files for the presets, a fresh draw (the `original` extra) for anything else."""
    from grok_lightning.original_init import MissingExtraError, load_original_params

    for k, seed in enumerate(seeds):
        try:
            arrays = load_original_params(seed=seed, p=model.p, model=model.cfg)
        except MissingExtraError as exc:
            raise ConfigError(f"model.init=original for this configuration: {exc}") from None
        model.load_model_params(k, arrays)


def build_objective(cfg: DictConfig):
    from grok_lightning.objectives import Multiclass

    p = cfg.data.p
    # the decoder's head covers every token, p + 2 (its loss and argmax read them all, as the original)
    n_classes = p + 2 if OmegaConf.select(cfg, "model.kind", default="mlp") == "decoder" else p
    return Multiclass(n_classes=n_classes, scale=1.0 / p if cfg.model.loss_scale == "per_class" else 1.0)


def analyses_for(cfg: DictConfig) -> frozenset:
    """The MLP's Fourier and heatmap views, the transformer's own (callbacks/transformer_circuit.py),
    or none for the decoder (its curves, verdicts and page only)."""
    kind = OmegaConf.select(cfg, "model.kind", default="mlp")
    if kind == "transformer":
        return frozenset({"transformer"})
    if kind == "decoder":
        return frozenset()
    return frozenset({"fourier", "heatmaps"})


def memory_elements(cfg: DictConfig) -> float:
    """A rough upper bound of a single run's float64 elements (see Task.memory_elements)."""
    d, m = cfg.data, cfg.model
    p = d.p
    pairs = p * (p + 1) / 2 if d.symmetric else p * p
    if OmegaConf.select(cfg, "model.kind", default="mlp") == "decoder":
        dc = m.decoder  # 4 positions, per layer ~6 d-wide and 2 d_mlp-wide activations; the head's logits
        params = 2 * (p + 2) * dc.d_model + dc.n_layers * (4 * dc.d_model**2 + 2 * dc.d_model * dc.d_mlp)
        return 3 * pairs * (4 * dc.n_layers * (6 * dc.d_model + 2 * dc.d_mlp) + p + 2) + 4 * params
    params = 2 * p * m.d_embed + 3 * m.d_embed * m.n_neurons + 2 * p * m.n_neurons
    return 3 * pairs * (2 * p + m.n_neurons + p) + 4 * params


SIZE_KEYS = ("data.p", "model.d_embed", "model.n_neurons")


TASK = Task(
    name="modadd",
    config_class=ModAddConfig,
    build_datamodule=build_datamodule,
    build_model=build_model,
    build_objective=build_objective,
    analyses=frozenset({"fourier", "heatmaps"}),
    select_analyses=analyses_for,
    choices=CHOICES,
    rules=RULES,
    validate=validate,
    memory_elements=memory_elements,
    size_keys=SIZE_KEYS,
)

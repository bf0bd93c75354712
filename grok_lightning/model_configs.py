"""The models' settings as plain dataclasses (the `model` sections of the configs): no torch, so
a config can be read, checked and printed without importing the models (grok_lightning.model,
grok_lightning.transformer), which take them whole."""

from __future__ import annotations

from dataclasses import dataclass, field

EMBED_MODES = ("tied", "input_tied", "untied", "fixed")
ACTIVATIONS = ("relu", "square")


@dataclass
class FactoredMLPConfig:
    """The factored MLP's settings: the `model` section of modadd's config, taken whole by
    FactoredMLP and by the original-weights draw (grok_lightning.original_init)."""

    d_embed: int = 500
    n_neurons: int = 24
    embed: str = "tied"  # tied | input_tied | untied | fixed (constant cos/sin embedding)
    tied_hidden: bool = True
    collapsed_hidden: bool = False
    collapsed_out: bool = False
    activation: str = "relu"  # relu | square
    freqs: list[int] = field(default_factory=lambda: [1])  # embed=fixed: d_embed = 2 * len(freqs)
    init: str = "torch"  # torch: PyTorch's generator | original: the JAX/Haiku draw of the notebooks
    loss_scale: str = "per_class"  # per_class: CE / p as the original logged | mean: plain CE

    @property
    def embed_width(self) -> int:
        """The embedding's width: d_embed, or cos and sin per frequency for the fixed circle."""
        return 2 * len(self.freqs) if self.embed == "fixed" else self.d_embed

    @property
    def tied_unembed(self) -> bool:
        """Whether the unembedding is E^T (tied or fixed embedding) rather than its own matrix."""
        return self.embed in ("tied", "fixed")


@dataclass
class TransformerConfig:
    """The transformer's settings (defaults Nanda et al. 2023's); p comes from the data."""

    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512


@dataclass
class DecoderConfig:
    """The two-layer decoder's settings (defaults Grokfast's modular-arithmetic run); p comes from the
    data (grok_lightning.decoder)."""

    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_mlp: int = 512


@dataclass
class ParityMLPConfig:
    """The parity MLP's settings: the `model` section of parity's config, taken whole by ParityMLP."""

    n_neurons: int = 32
    init: str = "torch"  # only torch: the original parity draws are not known

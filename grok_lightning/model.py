"""The factored one-layer MLP of the explorable, K independent models at once.

    logits = act(onehot(a) E Win + onehot(b) E Win) Wout U,   U = E^T when tied

Every parameter carries a leading model dimension [K, in, out] and is named as in the original
Haiku code (`embed`, `hidden`, `out`, `unembed`, with `_a` / `_b` when untied), so weights drawn by
the original notebooks load by name. The forward collapses first (W_input = E Win [K, p, n],
W_output = Wout U [K, n, p]) and then multiplies a fixed one-hot input: far fewer flops than
embedding every example, with identical results. No Lightning here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from grok_lightning.model_configs import ACTIVATIONS, EMBED_MODES, FactoredMLPConfig  # noqa: F401
from grok_lightning.rounding import BF16_BITS, TF32_BITS, rounded_bmm

# Haiku's VarianceScaling(truncated_normal) divides by the std of a unit normal cut at +/-2 sigma,
# so the drawn values end up with exactly the requested std.
_TRUNC_STD = 0.87962566103423978


def haiku_embedding_init_(w: torch.Tensor, generator: torch.Generator) -> None:
    """VarianceScaling(2.0, fan_in, truncated normal): std exactly sqrt(2 / fan_in), fan_in = dim 0."""
    std = math.sqrt(2.0 / w.shape[0]) / _TRUNC_STD
    nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=generator)


def haiku_linear_init_(w: torch.Tensor, generator: torch.Generator) -> None:
    """hk.Linear default: truncated normal, sigma = 1/sqrt(fan_in), cut at +/-2 sigma, uncorrected."""
    std = 1.0 / math.sqrt(w.shape[0])
    nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=generator)


def fixed_embedding(p: int, freqs: Sequence[int] = (1,)) -> np.ndarray:
    """[p, 2*len(freqs)] float64: columns cos(2 pi f n / p), sin(2 pi f n / p), unit L2 norm each."""
    n = np.arange(p)
    cols = []
    for f in freqs:
        angle = 2 * np.pi * f * n / p
        cols += [np.cos(angle), np.sin(angle)]
    emb = np.stack(cols, axis=1)
    return emb / np.linalg.norm(emb, axis=0, keepdims=True)


def circular_embedding(p: int, freqs: Sequence[int]) -> torch.Tensor:
    """Constant embedding [p, 2F] float64: cos and sin of 2 pi f n / p for each f, each column unit norm."""
    return torch.from_numpy(fixed_embedding(p, freqs))


@dataclass(frozen=True)
class MatmulDtype:
    """What a matrix product computes in: a torch dtype and, for accelerator numerics, the mantissa
    bits its float32 operands are rounded to (None: the dtype's own; grok_lightning.rounding)."""

    dtype: torch.dtype
    mantissa_bits: Optional[int] = None

    def bmm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.bmm(a, b) if self.mantissa_bits is None else rounded_bmm(a, b, self.mantissa_bits)


# train.precision -> (parameters and elementwise math, matrix products). 64_mm32: the lead on the
# article's accelerator run in docs/experiments.md, "Numerics"; tf32 and bf16: that accelerator's
# product numerics, float32 everywhere else.
PRECISIONS: dict[str, tuple[torch.dtype, MatmulDtype]] = {
    "32": (torch.float32, MatmulDtype(torch.float32)),
    "64": (torch.float64, MatmulDtype(torch.float64)),
    "original": (torch.float64, MatmulDtype(torch.float64)),  # FactoredMLP keeps some float32 params
    "64_mm32": (torch.float64, MatmulDtype(torch.float32)),
    "tf32": (torch.float32, MatmulDtype(torch.float32, TF32_BITS)),
    "bf16": (torch.float32, MatmulDtype(torch.float32, BF16_BITS)),
}


def compute_dtype(precision: str) -> torch.dtype:
    return PRECISIONS[precision][0]


def matmul_dtype(precision: str) -> MatmulDtype:
    return PRECISIONS[precision][1]


def bmm(a: torch.Tensor, b: torch.Tensor, dtype: MatmulDtype) -> torch.Tensor:
    """Batched product computed in `dtype`, returned in a's dtype (no casts when they agree)."""
    if a.dtype == dtype.dtype and b.dtype == dtype.dtype:
        return dtype.bmm(a, b)
    return dtype.bmm(a.to(dtype.dtype), b.to(dtype.dtype)).to(a.dtype)


class FactoredMLP(nn.Module):
    """K factored MLPs for modular addition, built from one FactoredMLPConfig (docs/experiments.md,
    "The factored MLP", has the flags); p comes from the data, precision from the training section."""

    def __init__(self, cfg: FactoredMLPConfig, *, seeds: Sequence[int], p: int, precision: str = "32"):
        super().__init__()
        self.cfg, self.p, self.n_models = cfg, p, len(seeds)
        self.dtype, self.mm_dtype = compute_dtype(precision), matmul_dtype(precision)
        # "original" precision: parameters made by hk.get_parameter stay float32, Linears float64.
        param_dtype = torch.float32 if precision == "original" else self.dtype

        if cfg.embed == "fixed":
            self.register_buffer("fixed_embed", circular_embedding(p, cfg.freqs).to(self.dtype))
        self.d_embed = d_embed = cfg.embed_width
        n_neurons = cfg.n_neurons
        self.width = d_embed if cfg.collapsed_hidden else n_neurons

        # name -> (shape, initialiser, dtype), in the original's creation order.
        specs: dict[str, tuple] = {}
        emb = (haiku_embedding_init_, param_dtype)
        lin = (haiku_linear_init_, self.dtype)
        if cfg.embed in ("tied", "input_tied"):
            specs["embed"] = ((p, d_embed), *emb)
        elif cfg.embed == "untied":
            specs["embed_a"] = ((p, d_embed), *emb)
            specs["embed_b"] = ((p, d_embed), *emb)
        if not cfg.collapsed_hidden:
            names = ["hidden"] if cfg.tied_hidden else ["hidden_a", "hidden_b"]
            for name in names:
                specs[name] = ((d_embed, n_neurons), *lin)
        if not cfg.collapsed_out:
            specs["out"] = ((self.width, d_embed), *lin)
            if not cfg.tied_unembed:
                specs["unembed"] = ((d_embed, p), *emb)
        elif not (cfg.tied_unembed and d_embed == n_neurons):  # E^T only when d == n (docs/experiments.md)
            specs["unembed"] = ((self.width, p), *lin)
        if not specs:
            raise ValueError("this combination of flags leaves no trainable parameter")

        self.weights = nn.ParameterDict(
            {
                name: nn.Parameter(torch.empty(self.n_models, *shape, dtype=dt))
                for name, (shape, _, dt) in specs.items()
            }
        )
        for k, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(int(seed))
            for name, (_, init, _) in specs.items():
                with torch.no_grad():
                    init(self.weights[name].data[k], gen)

    # -------------------------------------------------------------------------------------------
    def _w(self, name: str) -> torch.Tensor:
        return self.weights[name].to(self.dtype)

    def _embedding(self, side: str) -> torch.Tensor:
        if self.cfg.embed == "fixed":
            return self.fixed_embed.expand(self.n_models, -1, -1)
        return self._w("embed" if "embed" in self.weights else f"embed_{side}")

    def _input_side(self, side: str) -> torch.Tensor:
        E = self._embedding(side)
        if self.cfg.collapsed_hidden:
            return E
        Win = self._w("hidden" if "hidden" in self.weights else f"hidden_{side}")
        return bmm(E, Win, self.mm_dtype)

    def collapsed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_input_a [K, p, n], W_input_b [K, p, n], W_output [K, n, p]); a and b are the same
        tensor object when the input side is tied."""
        W_in_a = self._input_side("a")
        W_in_b = W_in_a if self.input_tied else self._input_side("b")
        if "unembed" in self.weights:
            U = self._w("unembed")
        else:  # tied (or fixed): U = E^T
            U = self._embedding("a").transpose(1, 2)
        W_out = U if self.cfg.collapsed_out else bmm(self._w("out"), U, self.mm_dtype)
        return W_in_a, W_in_b, W_out

    @property
    def W_input(self) -> torch.Tensor:
        return self.collapsed()[0]

    @property
    def W_output(self) -> torch.Tensor:
        return self.collapsed()[2]

    @property
    def input_tied(self) -> bool:
        return "embed_a" not in self.weights and "hidden_a" not in self.weights

    # -------------------------------------------------------------------------------------------
    def encode(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Index pairs [K, N] -> the fixed one-hot inputs of forward, built once per data set."""
        oa = nn.functional.one_hot(a, self.p).to(self.dtype)
        ob = nn.functional.one_hot(b, self.p).to(self.dtype)
        return (oa + ob,) if self.input_tied else (oa, ob)

    def act(self, h: torch.Tensor) -> torch.Tensor:
        return torch.relu(h) if self.cfg.activation == "relu" else h * h

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Encoded inputs -> logits [K, N, p]."""
        W_in_a, W_in_b, W_out = self.collapsed()
        if len(inputs) == 1:
            h = bmm(inputs[0], W_in_a, self.mm_dtype)
        else:
            h = bmm(inputs[0], W_in_a, self.mm_dtype) + bmm(inputs[1], W_in_b, self.mm_dtype)
        return bmm(self.act(h), W_out, self.mm_dtype)

    # -------------------------------------------------------------------------------------------
    def n_trainable_per_model(self) -> int:
        return sum(w[0].numel() for w in self.weights.values())

    def n_collapsed_per_model(self) -> int:
        W_in_a, W_in_b, W_out = self.collapsed()
        sides = 1 if W_in_a is W_in_b else 2
        return sides * W_in_a[0].numel() + W_out[0].numel()

    def load_model_params(self, k: int, arrays: dict[str, np.ndarray]):
        """Copy one model's unbatched arrays (keyed by the Haiku names) into slot k."""
        load_model_params(self.weights, k, arrays)


@torch.no_grad()
def load_model_params(weights: nn.ParameterDict, k: int, arrays: dict[str, np.ndarray]) -> None:
    """Copy one model's unbatched arrays, keyed by parameter name, into slot k of batched weights
    [K, ...]; the names and shapes must match exactly."""
    expected = set(weights)
    if set(arrays) != expected:
        raise ValueError(f"parameter names {sorted(arrays)} do not match the model's {sorted(expected)}")
    for name, value in arrays.items():
        target = weights[name].data[k]
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"{name}: shape {tuple(value.shape)} != model's {tuple(target.shape)}")
        # torch.tensor copies: a jax draw arrives as a read-only array, which as_tensor would
        # wrap (and warn about) instead
        target.copy_(torch.tensor(np.asarray(value)))


class TokenModel(nn.Module):
    """Base of the token models (grok_lightning.transformer, grok_lightning.decoder): one
    ParameterDict `weights` of [K, ...] tensors stacked from each model's own draws (`draw(generator)`
    -> name -> tensor, from a generator seeded with the model's seed), and what they share.
    Subclasses set cfg and p, and define encode."""

    def __init__(self, draw, seeds: Sequence[int], precision: str):
        super().__init__()
        self.dtype, self.n_models = compute_dtype(precision), len(seeds)
        draws = [draw(torch.Generator().manual_seed(int(s))) for s in seeds]
        self.weights = nn.ParameterDict(
            {
                name: nn.Parameter(torch.stack([d[name] for d in draws]).to(self.dtype).contiguous())
                for name in draws[0]
            }
        )

    @staticmethod
    def check_precision(precision: str, supported: Sequence[str], what: str) -> None:
        if precision not in supported:
            raise ValueError(
                f"precision {precision!r} is not supported by {what} (one of {', '.join(supported)})"
            )

    def all_pairs(self, device=None) -> tuple[torch.Tensor]:
        """Encoded inputs of all p^2 ordered pairs (a-major: row a * p + b), for every model."""
        n = torch.arange(self.p * self.p, device=device).expand(self.n_models, -1)
        return self.encode(n // self.p, n % self.p)

    def n_trainable_per_model(self) -> int:
        return sum(w[0].numel() for w in self.weights.values())

    def load_model_params(self, k: int, arrays: dict[str, np.ndarray]):
        """Copy one model's unbatched arrays (keyed by this class's parameter names, in its
        orientation) into slot k."""
        load_model_params(self.weights, k, arrays)

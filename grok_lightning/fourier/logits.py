"""The collapsed model's logits on every ordered pair, and their key-frequency part: the progress
measures of Nanda et al. 2023 (restricted and excluded loss)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import torch
from torch import Tensor

from grok_lightning.fourier.basis import n_frequencies


def hidden_grid(W_in_a: Tensor, W_in_b: Tensor, act: Callable[[Tensor], Tensor]) -> Tensor:
    """Activations of every ordered pair: act(W_in_a[a] + W_in_b[b]) -> [..., p, p, n]."""
    return act(W_in_a.unsqueeze(-2) + W_in_b.unsqueeze(-3))


def logit_grid(W_in_a: Tensor, W_in_b: Tensor, W_output: Tensor, act: Callable[[Tensor], Tensor]) -> Tensor:
    """Logits of every ordered pair [..., p(a), p(b), p(c)] of the collapsed model."""
    return hidden_grid(W_in_a, W_in_b, act) @ W_output.unsqueeze(-3)


@lru_cache(maxsize=8)
def _wave_directions_cpu(p: int) -> Tensor:
    """[n_freq, 2, p(s), p(c)]: cos and sin of 2 pi k (s - c) / p for each frequency k."""
    s = torch.arange(p, dtype=torch.float64)
    diff = s[:, None] - s[None, :]
    k = torch.arange(1, n_frequencies(p) + 1, dtype=torch.float64)[:, None, None]
    angle = 2 * math.pi * k * diff / p
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)


def key_frequency_logits(grid: Tensor, key_mask: Tensor) -> Tensor:
    """The key-frequency part of a logit grid [..., p, p, p] -> [..., p(s), p(c)].

    Projects the logits onto the directions cos/sin(2 pi k (a + b - c) / p) of the key frequencies
    (key_mask [..., n_freq]), as Nanda et al. 2023. These directions depend on a + b only through
    s = (a + b) mod p, so the projected logits are a table over (s, c)."""
    p = grid.shape[-1]
    lead = grid.shape[:-3]
    a = torch.arange(p, device=grid.device)
    s = (a[:, None] + a[None, :]).remainder(p).flatten()
    flat = grid.reshape(*lead, p * p, p)
    by_sum = torch.zeros(*lead, p, p, dtype=grid.dtype, device=grid.device).index_add_(-2, s, flat)
    U = _wave_directions_cpu(p).to(dtype=grid.dtype, device=grid.device)  # [F, 2, p, p]
    # Each (s, c) cell stands for p ordered pairs (a, b): <L, u> = sum M U, <u, u> = p sum U^2.
    norms = p * U.square().sum((-1, -2))
    coef = torch.einsum("...sc,fjsc->...fj", by_sum, U) / norms.clamp_min(1e-12) * (norms > 1e-9)
    coef = coef * key_mask.to(grid.dtype).unsqueeze(-1)
    return torch.einsum("...fj,fjsc->...sc", coef, U)


def progress_measures(
    W_in_a: Tensor,
    W_in_b: Tensor,
    W_output: Tensor,
    act: Callable[[Tensor], Tensor],
    key_mask: Tensor,
    train_logits: Tensor,
    train_targets: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
) -> dict[str, Tensor]:
    """Nanda et al. 2023 progress measures, each [K] (inputs carry the model dimension K).

    restricted_loss: the logits kept to the key frequencies, over all p^2 ordered pairs (each sum
        s = a + b mod p occurs p times, so it is the mean over s of the loss of row s).
    excluded_loss: the key frequencies removed from the logits, on the training pairs (whose
        target is their s).
    loss_fn(logits [K, N, p], targets [K, N]) -> [K] is the task's loss, so both are on the same
    scale as the logged train/test losses."""
    key_part = key_frequency_logits(logit_grid(W_in_a, W_in_b, W_output, act), key_mask)  # [K, p, p]
    K, p = key_part.shape[0], key_part.shape[-1]
    classes = torch.arange(p, device=key_part.device).expand(K, p)
    restricted = loss_fn(key_part, classes)
    at_targets = key_part.gather(1, train_targets.unsqueeze(-1).expand(-1, -1, p))
    excluded = loss_fn(train_logits - at_targets.to(train_logits.dtype), train_targets)
    return {"restricted_loss": restricted, "excluded_loss": excluded}

"""How concentrated the weights' Fourier energy is: shares, Gini, key frequencies, participation ratio;
and the sparse-parity analogue, the weight mass on the relevant bits."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from grok_lightning.fourier.basis import dft_input, dft_output, frequency_norms

# A frequency counts as "key" when it holds at least this multiple of the uniform share of the
# non-constant Fourier energy. Random weights spread energy evenly (each share ~1/n_freq with
# a relative spread ~1/sqrt(n_neurons)), so 2x uniform is essentially never reached by chance for
# the main preset, while a grokked model's handful of frequencies each hold far more.
KEY_SHARE_FACTOR = 2.0


def frequency_energy(dft: Tensor) -> Tensor:
    """[..., p, n] -> [..., n_freq]: Fourier energy of each non-constant frequency, all neurons."""
    return frequency_norms(dft)[..., 1:, :].square().sum(-1)


def energy_shares(dft: Tensor) -> Tensor:
    """[..., n_freq]: each frequency's share of the non-constant energy (sums to 1)."""
    e = frequency_energy(dft)
    return e / e.sum(-1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


def top_k_energy_share(dft: Tensor, k: int = 5) -> Tensor:
    """[...]: share of the non-constant Fourier energy in the k strongest frequencies."""
    shares = energy_shares(dft)
    return shares.topk(min(k, shares.shape[-1]), dim=-1).values.sum(-1)


def gini(x: Tensor, dim: int = -1) -> Tensor:
    """Gini coefficient of non-negative values along dim: 0 = all equal, (m-1)/m = one nonzero."""
    x = x.movedim(dim, -1).sort(dim=-1).values
    m = x.shape[-1]
    i = torch.arange(1, m + 1, dtype=x.dtype, device=x.device)
    total = x.sum(-1)
    g = ((2 * i - m - 1) * x).sum(-1) / (m * total.clamp_min(torch.finfo(x.dtype).tiny))
    return torch.where(total > 0, g, torch.zeros_like(g))


def frequency_gini(dft: Tensor) -> Tensor:
    """[...]: Gini of the per-frequency norms (constant excluded)."""
    return gini(frequency_energy(dft).sqrt())


def key_frequency_mask(dft: Tensor, factor: float = KEY_SHARE_FACTOR) -> Tensor:
    """[..., n_freq] bool (index 0 = frequency 1): frequencies holding >= factor x the uniform share."""
    shares = energy_shares(dft)
    return shares >= factor / shares.shape[-1]


def key_frequencies(dft: Tensor, factor: float = KEY_SHARE_FACTOR) -> list[int]:
    """One model's key frequencies, ascending."""
    return (key_frequency_mask(dft, factor).nonzero().flatten() + 1).tolist()


def inverse_participation_ratio(dft: Tensor) -> Tensor:
    """[..., p, n] -> [..., n]: per neuron, sum of squared energy shares over the non-constant
    frequencies: 1 = a single frequency, 1/n_freq = spread evenly."""
    e = frequency_norms(dft)[..., 1:, :].square()
    q = e / e.sum(-2, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)
    return q.square().sum(-2)


def sparsity_measures(W_input: Tensor, W_output: Tensor, top_k: int = 5) -> dict[str, Tensor]:
    """The sparsity numbers logged over training, each [...] (one value per model)."""
    out: dict[str, Tensor] = {}
    for side, dft in (("in", dft_input(W_input)), ("out", dft_output(W_output))):
        out[f"{side}_gini"] = frequency_gini(dft)
        out[f"{side}_top{top_k}_energy"] = top_k_energy_share(dft, top_k)
        out[f"{side}_n_key_freqs"] = key_frequency_mask(dft).sum(-1).to(dft.dtype)
        out[f"{side}_ipr"] = inverse_participation_ratio(dft).mean(-1)
    return out


def first_bits_mass_share(W_input: Tensor, k: int, n_bits: Optional[int] = None) -> Tensor:
    """Sparse parity: share of |W_input| on the first k bit rows, out of all bit rows (the
    trailing bias row, if any, excluded): k/n_bits for spread weights, 1 when only the relevant
    bits are read. [..., n_bits(+1), n] -> [...]."""
    n_bits = n_bits if n_bits is not None else W_input.shape[-2] - 1
    mass = W_input[..., :n_bits, :].abs().sum(-1)
    return mass[..., :k].sum(-1) / mass.sum(-1).clamp_min(torch.finfo(mass.dtype).tiny)

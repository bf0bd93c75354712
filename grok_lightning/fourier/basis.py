"""The real Fourier basis of Z_p, the DFT of both weight sides, and each neuron's frequency and phase."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor


def n_frequencies(p: int) -> int:
    """Number of non-constant frequencies: (p-1)//2, plus the Nyquist frequency for even p."""
    return p // 2


@lru_cache(maxsize=16)
def _basis_cpu(p: int) -> Tensor:
    n = torch.arange(p, dtype=torch.float64)
    rows = [torch.full((p,), 1.0, dtype=torch.float64)]
    for k in range(1, (p - 1) // 2 + 1):
        angle = 2 * math.pi * k * n / p
        rows += [torch.cos(angle), torch.sin(angle)]
    if p % 2 == 0:
        rows.append(torch.cos(math.pi * n))
    F = torch.stack(rows)
    return F / F.norm(dim=1, keepdim=True)


def fourier_basis(p: int, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """The orthonormal real Fourier basis F [p, p] (rows are basis vectors)."""
    return _basis_cpu(p).to(dtype=dtype, device=device)


@lru_cache(maxsize=16)
def row_frequency(p: int) -> Tensor:
    """[p] long: the frequency of each basis row (0 for the constant row)."""
    return torch.tensor([(r + 1) // 2 for r in range(p)], dtype=torch.long)


def basis_labels(p: int) -> list[str]:
    labels = ["const"]
    for k in range(1, (p - 1) // 2 + 1):
        labels += [f"cos {k}", f"sin {k}"]
    if p % 2 == 0:
        labels.append(f"cos {p // 2}")
    return labels


def dft_input(W_input: Tensor) -> Tensor:
    """F W_input: [..., p, n] -> [..., p, n] (basis row x neuron)."""
    p = W_input.shape[-2]
    return fourier_basis(p, W_input.dtype, W_input.device) @ W_input


def dft_output(W_output: Tensor) -> Tensor:
    """F W_output^T: [..., n, p] -> [..., p, n] (basis row x neuron)."""
    p = W_output.shape[-1]
    return fourier_basis(p, W_output.dtype, W_output.device) @ W_output.transpose(-1, -2)


def frequency_norms(dft: Tensor) -> Tensor:
    """[..., p, n] -> [..., n_freq + 1, n]: per neuron, the norm of each frequency's rows
    (index 0 = constant, index k = frequency k)."""
    p = dft.shape[-2]
    idx = row_frequency(p).to(dft.device)
    energy = torch.zeros(
        *dft.shape[:-2], n_frequencies(p) + 1, dft.shape[-1], dtype=dft.dtype, device=dft.device
    )
    energy.index_add_(-2, idx, dft.square())
    return energy.sqrt()


def neuron_frequencies(dft_in: Tensor) -> Tensor:
    """[..., p, n] -> [..., n] long: each neuron's strongest non-constant frequency (1..n_freq)."""
    return frequency_norms(dft_in)[..., 1:, :].argmax(dim=-2) + 1


def neuron_phases(dft: Tensor, freqs: Tensor) -> Tensor:
    """[..., p, n], freqs [..., n] -> [..., n, 2]: each neuron's (cos, sin) coefficients at its
    frequency. For the Nyquist frequency of an even p the sin coefficient is 0."""
    p = dft.shape[-2]
    cos_row = (2 * freqs - 1).clamp(max=p - 1)
    sin_row = 2 * freqs
    cos = dft.gather(-2, cos_row.unsqueeze(-2)).squeeze(-2)
    sin_valid = sin_row < p
    sin = dft.gather(-2, sin_row.clamp(max=p - 1).unsqueeze(-2)).squeeze(-2) * sin_valid
    return torch.stack([cos, sin], dim=-1)


def group_by_frequency(freqs: Tensor) -> dict[int, list[int]]:
    """One model's neuron frequencies [n] -> {frequency: [neuron indices]}, frequencies ascending."""
    groups: dict[int, list[int]] = {}
    for neuron, f in enumerate(freqs.tolist()):
        groups.setdefault(int(f), []).append(neuron)
    return dict(sorted(groups.items()))

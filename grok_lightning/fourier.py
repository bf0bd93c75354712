"""Fourier analysis of modular-addition weights (docs/experiments.md, "Fourier analysis").
Pure torch: no Lightning, no W&B.

Everything works on a leading model dimension where natural: W_input [K, p, n] (or [p, n]),
W_output [K, n, p] (or [n, p]); results keep the leading dimensions.

Conventions
- Basis F [p, p], orthonormal: row 0 the constant 1/sqrt(p); rows 2k-1, 2k the cos and sin of
  frequency k (k = 1..(p-1)//2), each unit norm; for even p a last row cos(pi n) (Nyquist).
- dft_in = F W_input [p, n]; dft_out = F W_output^T [p, n]: one column per neuron on both sides.
- A frequency's strength in a neuron is the norm of its (cos, sin) pair: phase-invariant, so a
  neuron at frequency k is found as k whatever its phase (the largest single |coefficient| can
  pick a rival frequency when the neuron's phase splits it between cos and sin).
- Sparsity numbers exclude the constant row: it carries no frequency, only an offset.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Optional

import torch

Tensor = torch.Tensor

# A frequency counts as "key" when it holds at least this multiple of the uniform share of the
# non-constant Fourier energy. Random weights spread energy evenly (each share ~1/n_freq with
# a relative spread ~1/sqrt(n_neurons)), so 2x uniform is essentially never reached by chance for
# the main preset, while a grokked model's handful of frequencies each hold far more.
KEY_SHARE_FACTOR = 2.0


# ------------------------------------------------------------------------------------------ basis
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


# ------------------------------------------------------------------------------------------ DFT
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


# ------------------------------------------------------------------------------------------ sparsity
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


# ------------------------------------------------------------------------------------------ logits
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


# ------------------------------------------------------------------------------------------ waves
def frequency_group_waves(
    W_in_a: Tensor, W_in_b: Tensor, W_output: Tensor, act: Callable[[Tensor], Tensor], freqs: Tensor
) -> list[dict]:
    """One model ([p, n], [p, n], [n, p], neuron frequencies [n]): each frequency group's logit
    contribution act(h)[:, group] W_output[group] averaged over all (a, b, c) with the same
    d = (a + b - c) mod p, and its least-squares fit A cos(2 pi f d / p + phi).

    Returns per group: freq, neurons, wave [p], spread [p] (std over the cells of each d),
    fit [p] = offset + amplitude cos(2 pi f d / p + phase), and r2 (share of the contribution's
    variance over all cells that the cosine explains)."""
    p = W_output.shape[-1]
    h = hidden_grid(W_in_a, W_in_b, act)  # [p, p, n]
    a = torch.arange(p, device=h.device)
    d = (a[:, None, None] + a[None, :, None] - a[None, None, :]).remainder(p).flatten()
    count = float(p * p)
    out = []
    for f, neurons in group_by_frequency(freqs).items():
        idx = torch.tensor(neurons, device=h.device)
        contrib = (h[..., idx] @ W_output[idx]).flatten()  # [p^3]
        wave = torch.zeros(p, dtype=contrib.dtype, device=h.device).index_add_(0, d, contrib) / count
        sq = torch.zeros_like(wave).index_add_(0, d, contrib.square()) / count
        spread = (sq - wave.square()).clamp_min(0).sqrt()
        angle = 2 * math.pi * f * torch.arange(p, dtype=contrib.dtype, device=h.device) / p
        basis = torch.stack([torch.ones_like(angle), torch.cos(angle), torch.sin(angle)], 1)
        coef = torch.linalg.lstsq(basis, wave.unsqueeze(1)).solution.squeeze(1)
        fit = basis @ coef
        centred = contrib - contrib.mean()
        explained = (fit - coef[0]).square().sum() * count
        r2 = float(explained / centred.square().sum().clamp_min(1e-30))
        c0, c_cos, c_sin = coef.tolist()
        out.append(
            {
                "freq": f,
                "neurons": neurons,
                "wave": wave,
                "spread": spread,
                "fit": fit,
                "r2": r2,
                "offset": c0,
                "amplitude": math.hypot(c_cos, c_sin),
                "phase": math.atan2(-c_sin, c_cos),
            }
        )
    return out


def group_wave_fits(
    W_in_a: Tensor,
    W_in_b: Tensor,
    W_output: Tensor,
    act: Callable[[Tensor], Tensor],
    groups: dict[int, list[int]],
) -> dict[str, Tensor]:
    """frequency_group_waves' wave, offset, amplitude, phase and r2 for given neuron groups
    ({frequency: neurons}), over any leading dimensions (e.g. every frame of a trajectory:
    [T, p, n], [T, p, n], [T, n, p]); no spread. Costs p^2 n per model instead of p^3 per group:
    the mean over the cells of each d = (a + b - c) mod p only needs the activations summed per
    s = (a + b) mod p, and the total variance for r2 is a quadratic form in the activations.

    Returns wave [..., G, p] and offset / amplitude / phase / r2 [..., G], groups in the given order."""
    p = W_output.shape[-1]
    h = hidden_grid(W_in_a, W_in_b, act)  # [..., p(a), p(b), n]
    lead = h.shape[:-3]
    flat = h.reshape(*lead, p * p, h.shape[-1])
    a = torch.arange(p, device=h.device)
    s_of = (a[:, None] + a[None, :]).remainder(p).flatten()
    by_sum = torch.zeros(*lead, p, h.shape[-1], dtype=h.dtype, device=h.device).index_add_(-2, s_of, flat)
    c_of = (a[None, :] - a[:, None]).remainder(p)  # [d, s] -> c = (s - d) mod p
    count = float(p * p)  # cells (a, b, c) per d
    angle = 2 * math.pi * torch.arange(p, dtype=h.dtype, device=h.device) / p
    out: dict[str, list] = {k: [] for k in ("wave", "offset", "amplitude", "phase", "r2")}
    for f, neurons in groups.items():
        idx = torch.tensor(neurons, device=h.device)
        W = W_output[..., idx, :]  # [..., g, p]
        M = by_sum[..., idx] @ W  # [..., p(s), p(c)]: summed logit contribution per (s, c)
        wave = M.gather(-1, c_of.T.expand(*lead, p, p)).sum(-2) / count  # [..., p(d)]
        basis = torch.stack([torch.ones_like(angle), torch.cos(f * angle), torch.sin(f * angle)], 1)
        coef = wave @ torch.linalg.pinv(basis).transpose(0, 1)  # [..., 3]: least squares
        fit = coef @ basis.transpose(0, 1)
        h_g = flat[..., idx]  # [..., p^2, g]
        total_sq = ((h_g @ (W @ W.transpose(-1, -2))) * h_g).sum((-1, -2))  # sum of contrib^2 over cells
        total = (h_g @ W.sum(-1, keepdim=True)).sum((-1, -2))
        centred = total_sq - total.square() / (count * p)
        explained = (fit - coef[..., :1]).square().sum(-1) * count
        out["wave"].append(wave)
        out["offset"].append(coef[..., 0])
        out["amplitude"].append(torch.hypot(coef[..., 1], coef[..., 2]))
        out["phase"].append(torch.atan2(-coef[..., 2], coef[..., 1]))
        out["r2"].append(explained / centred.clamp_min(1e-30))
    return {k: torch.stack(v, -2 if k == "wave" else -1) for k, v in out.items()}


# ------------------------------------------------------------------------------------------ parity
def first_bits_mass_share(W_input: Tensor, k: int, n_bits: Optional[int] = None) -> Tensor:
    """Sparse parity: share of |W_input| on the first k bit rows, out of all bit rows (the
    trailing bias row, if any, excluded): k/n_bits for spread weights, 1 when only the relevant
    bits are read. [..., n_bits(+1), n] -> [...]."""
    n_bits = n_bits if n_bits is not None else W_input.shape[-2] - 1
    mass = W_input[..., :n_bits, :].abs().sum(-1)
    return mass[..., :k].sum(-1) / mass.sum(-1).clamp_min(torch.finfo(mass.dtype).tiny)

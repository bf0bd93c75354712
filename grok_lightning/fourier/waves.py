"""Each frequency group's logit contribution as a wave over d = (a + b - c) mod p, and its cosine fit."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from grok_lightning.fourier.basis import group_by_frequency
from grok_lightning.fourier.logits import hidden_grid


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

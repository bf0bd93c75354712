"""Analyses of the one-layer transformer of Nanda et al. 2023 (grok_lightning.transformer): the
Fourier spectrum of its embedding and neuron-logit map, the neurons' frequency clusters, and the
progress measures (restricted and excluded loss) from a full logit table. Pure torch, any leading
model dimensions; no Lightning.

Sources: the paper's code, github.com/mechanistic-interpretability-grokking/progress-measures-paper
(`transformers.py`, `helpers.py`), and its analysis notebook Grokking_Analysis.ipynb (absent from
the stored snapshot; read in a public script port of it that keeps the notebook's cells and the
paper's figure captions). The basis is grok_lightning.fourier.basis's (rows: constant, then cos k,
sin k for k = 1..(p-1)//2, each unit norm), which is the original's make_fourier_basis for odd p.

Embedding (paper Fig. 3a plots (W_E[:, :p] @ F^T).norm over d_model, one bar per cos / sin row):
embedding_fourier_norms gives those bars, embedding_frequency_norms combines each frequency's cos
and sin bars (sqrt(cos^2 + sin^2): phase-invariant), constant excluded.

Key frequencies. The paper's are the frequencies of its neuron clusters: each MLP neuron's
activation over the (a, b) grid, centred, in the 2D Fourier basis; a frequency k explains the sum
of squares of its 8 terms (cos/sin k in a alone, in b alone, and the 4 products) out of the total;
the neuron belongs to the frequency explaining most, and neurons explained < 0.85 form a residual
cluster. key_freqs = the frequencies that occur (np.unique over all neurons' best frequency, before
the 0.85 cut). neuron_frequency_clusters and neuron_key_frequency_mask compute these. For the weights
alone, embedding_key_frequency_mask applies the repository's rule (grok_lightning.fourier.sparsity):
a frequency is key when it holds >= KEY_SHARE_FACTOR (2) times the uniform share 1/n_freq of the
embedding's non-constant Fourier energy. The paper's mainline W_E has six non-negligible
frequencies, five of which ({14, 35, 41, 42, 52}) are the neurons' (the caption of Fig. 3a).

Progress measures, two projections of the logits onto the key frequencies:
- "waves" (key_frequency_progress): grok_lightning.fourier.logits.key_frequency_logits, the
  projection onto cos / sin(w_k (a + b - c)), two coefficients per frequency: the same numbers as
  logits.progress_measures for the MLP, here from any logit table.
- "paper" (paper_progress_measures): the original analysis's per-class projection onto
  cos(w_k (a + b)) and sin(w_k (a + b)) (helpers.get_component_cos_xpy / _sin_xpy: the directions
  (cos_a cos_b - sin_a sin_b)/sqrt 2 and (sin_a cos_b + cos_a sin_b)/sqrt 2 of the 2D basis), two
  coefficients per frequency and class. It contains the waves' subspace, so it keeps at least as
  much of the logits. Restricted loss (`trig_loss`): the key part plus the "bias correction" (the
  logits' per-class mean over all pairs, the part no wave carries), cross-entropy over all p^2
  pairs. Excluded loss (`excluded_loss_2D_full`): the logits minus the key part, cross-entropy over
  the training pairs only. The paper's Figure 6 marks its phases at epochs 1.4k, 9.4k and 14k
  (vertical lines in the notebook: positions = [1400, 9400, 14000]).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from grok_lightning.fourier.basis import (
    dft_input,
    dft_output,
    fourier_basis,
    n_frequencies,
    row_frequency,
)
from grok_lightning.fourier.logits import key_frequency_logits
from grok_lightning.fourier.sparsity import KEY_SHARE_FACTOR, frequency_energy, gini, key_frequency_mask

# A neuron whose best frequency explains less than this share of its centred activation's variance
# joins no cluster (the original analysis: neuron_freqs[neuron_frac_explained < 0.85] = -1).
NEURON_CLUSTER_THRESHOLD = 0.85


# ------------------------------------------------------------------------------------ weights
def embedding_fourier_norms(W_E: Tensor) -> Tensor:
    """[..., p, d] -> [..., p]: norm of the embedding along each basis row (constant, cos 1, sin 1,
    ...), the bars of the paper's Fig. 3a."""
    return dft_input(W_E).norm(dim=-1)


def embedding_frequency_norms(W_E: Tensor) -> Tensor:
    """[..., p, d] -> [..., n_freq]: the embedding's norm in each frequency k = 1..n_freq (index
    k - 1), cos and sin rows combined; the constant row is left out."""
    return frequency_energy(dft_input(W_E)).sqrt()


def embedding_gini(W_E: Tensor) -> Tensor:
    """[..., p, d] -> [...]: Gini coefficient of embedding_frequency_norms: 0 for a flat spectrum,
    (n_freq - 1) / n_freq when a single frequency holds everything."""
    return gini(embedding_frequency_norms(W_E))


def embedding_key_frequency_mask(W_E: Tensor, factor: float = KEY_SHARE_FACTOR) -> Tensor:
    """[..., p, d] -> [..., n_freq] bool (index 0 = frequency 1): frequencies holding >= factor
    times the uniform share of the embedding's non-constant Fourier energy."""
    return key_frequency_mask(dft_input(W_E), factor)


def neuron_logit_frequency_norms(W_L: Tensor) -> Tensor:
    """The neuron-logit map W_L [..., d_mlp, p] -> [..., n_freq]: its norm in each frequency of the
    output class c (paper Fig. 3b, cos and sin combined), constant excluded."""
    return frequency_energy(dft_output(W_L)).sqrt()


# ------------------------------------------------------------------------------------ neurons
def neuron_frequency_clusters(acts: Tensor) -> tuple[Tensor, Tensor]:
    """Each neuron's frequency, as the paper's clusters.

    acts: activations over every ordered pair, [..., p, p, n] (a, b, neuron; a [..., p*p, n]
    table in a-major order reshapes to it). Each neuron's activations are centred over the pairs
    and taken to the 2D Fourier basis; frequency k explains the squares of the terms whose rows
    and columns are k's or the constant (cos/sin k of a, of b, and their 4 products).
    Returns (frequency [..., n] long in 1..n_freq, the share it explains [..., n] in [0, 1])."""
    if acts.dim() < 3 or acts.shape[-2] != acts.shape[-3]:
        raise ValueError(f"acts must be [..., p, p, n], not {tuple(acts.shape)}")
    n, p = acts.shape[-1], acts.shape[-2]
    centred = acts - acts.mean(dim=(-3, -2), keepdim=True)
    Fb = fourier_basis(p, acts.dtype, acts.device)
    coef = torch.einsum("xa,yb,...abn->...xyn", Fb, Fb, centred)  # [..., p (a row), p (b row), n]
    rows = row_frequency(p).to(acts.device)
    n_freq = n_frequencies(p)
    # energy by (frequency of the a row, frequency of the b row), index 0 = constant
    energy = torch.zeros(*coef.shape[:-3], n_freq + 1, p, n, dtype=coef.dtype, device=coef.device)
    energy.index_add_(-3, rows, coef.square())
    by_freq = torch.zeros(*coef.shape[:-3], n_freq + 1, n_freq + 1, n, dtype=coef.dtype, device=coef.device)
    by_freq.index_add_(-2, rows, energy)
    k = torch.arange(1, n_freq + 1, device=acts.device)
    explained = by_freq[..., 0, k, :] + by_freq[..., k, 0, :] + by_freq[..., k, k, :]  # [..., n_freq, n]
    total = by_freq.sum(dim=(-3, -2))
    share = explained / total.clamp_min(torch.finfo(total.dtype).tiny).unsqueeze(-2)
    frac, best = share.max(dim=-2)
    return best + 1, frac


def neuron_key_frequency_mask(freqs: Tensor, frac: Tensor, n_freq: int, min_fraction: float = 0.0) -> Tensor:
    """[..., n] neuron frequencies and shares -> [..., n_freq] bool: the frequencies of at least one
    neuron explained >= min_fraction. min_fraction 0 is the original's key_freqs (every neuron's
    best frequency); NEURON_CLUSTER_THRESHOLD keeps only the clusters' frequencies."""
    mask = torch.zeros(*freqs.shape[:-1], n_freq + 1, dtype=torch.bool, device=freqs.device)
    mask.scatter_(-1, torch.where(frac >= min_fraction, freqs, torch.zeros_like(freqs)), True)
    return mask[..., 1:]


# ----------------------------------------------------------------------------- progress measures
def mean_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Plain cross-entropy averaged per model: logits [K, N, C], targets [K, N] -> [K]."""
    K, N, C = logits.shape
    ce = F.cross_entropy(logits.reshape(K * N, C), targets.reshape(K * N), reduction="none")
    return ce.view(K, N).mean(1)


def _loss_fn(loss_fn: Optional[Callable[[Tensor, Tensor], Tensor]]) -> Callable[[Tensor, Tensor], Tensor]:
    return mean_cross_entropy if loss_fn is None else loss_fn


def _train_logits(logits_all: Tensor, train_a: Tensor, train_b: Tensor) -> Tensor:
    """logits_all [K, p, p, p], pairs [K, N] -> [K, N, p]."""
    models = torch.arange(logits_all.shape[0], device=logits_all.device)[:, None]
    return logits_all[models, train_a, train_b]


def _sums(p: int, device) -> Tensor:
    a = torch.arange(p, device=device)
    return (a[:, None] + a[None, :]).remainder(p)


def key_frequency_progress(
    logits_all: Tensor,
    key_mask: Tensor,
    train_a: Tensor,
    train_b: Tensor,
    loss_fn: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
) -> dict[str, Tensor]:
    """Restricted and excluded loss [K] from a full logit table, as logits.progress_measures.

    logits_all [K, p (a), p (b), p (c)]; key_mask [K, n_freq]; train pairs [K, N]. The key part is
    key_frequency_logits (waves cos / sin(w_k (a + b - c))). restricted_loss: the key part alone over
    all p^2 pairs; excluded_loss: the logits minus the key part on the training pairs (target
    (a + b) mod p). loss_fn(logits [K, N, p], targets [K, N]) -> [K]; default plain cross-entropy."""
    loss = _loss_fn(loss_fn)
    key_part = key_frequency_logits(logits_all, key_mask)  # [K, p (s), p (c)]
    K, p = key_part.shape[0], key_part.shape[-1]
    classes = torch.arange(p, device=key_part.device).expand(K, p)
    restricted = loss(key_part, classes)
    return {
        "restricted_loss": restricted,
        "excluded_loss": _excluded(logits_all, key_part, train_a, train_b, loss),
    }


def _excluded(logits_all: Tensor, key_part: Tensor, train_a: Tensor, train_b: Tensor, loss) -> Tensor:
    """The loss of the logits minus their key part [K, p (s), p (c)] on the training pairs."""
    s = (train_a + train_b).remainder(key_part.shape[-1])
    models = torch.arange(key_part.shape[0], device=key_part.device)[:, None]
    return loss(_train_logits(logits_all, train_a, train_b) - key_part[models, s], s)


def sum_frequency_logits(logits_all: Tensor, key_mask: Tensor) -> Tensor:
    """The original analysis's key part of a logit table [..., p, p, p] -> [..., p (s), p (c)]:
    for each class c, the projection of the logits over (a, b) onto cos(w_k (a + b)) and
    sin(w_k (a + b)) for the key frequencies (key_mask [..., n_freq]). Depends on (a, b) only
    through s = (a + b) mod p."""
    p = logits_all.shape[-1]
    lead = logits_all.shape[:-3]
    s_of = _sums(p, logits_all.device).flatten()
    by_sum = torch.zeros(*lead, p, p, dtype=logits_all.dtype, device=logits_all.device)
    by_sum.index_add_(-2, s_of, logits_all.reshape(*lead, p * p, p))  # [..., s, c]: sum over a + b = s
    angle = 2 * math.pi * torch.arange(1, n_frequencies(p) + 1, dtype=torch.float64)[:, None]
    angle = angle * torch.arange(p, dtype=torch.float64)[None, :] / p
    waves = torch.stack([torch.cos(angle), torch.sin(angle)], 1).to(logits_all.dtype)  # [F, 2, p (s)]
    waves = waves.to(logits_all.device)
    # a wave over s, repeated over the p pairs of each s, has squared norm p * sum_s wave^2
    norms = p * waves.square().sum(-1)  # [F, 2]
    coef = torch.einsum("...sc,fjs->...fjc", by_sum, waves) / norms.clamp_min(1e-12)[..., None]
    coef = coef * (norms > 1e-9)[..., None] * key_mask.to(logits_all.dtype)[..., None, None]
    return torch.einsum("...fjc,fjs->...sc", coef, waves)


def paper_progress_measures(
    logits_all: Tensor,
    key_mask: Tensor,
    train_a: Tensor,
    train_b: Tensor,
    loss_fn: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
) -> dict[str, Tensor]:
    """Restricted and excluded loss [K] as the original analysis computes them (module docstring).

    restricted_loss: sum_frequency_logits plus each class's mean logit over all pairs (the
    original's bias correction), cross-entropy over all p^2 pairs. excluded_loss: the logits minus
    sum_frequency_logits on the training pairs. Inputs as key_frequency_progress."""
    loss = _loss_fn(loss_fn)
    key_part = sum_frequency_logits(logits_all, key_mask)  # [K, p (s), p (c)]
    K, p = key_part.shape[0], key_part.shape[-1]
    restricted_table = key_part + logits_all.mean(dim=(-3, -2)).unsqueeze(-2)
    classes = torch.arange(p, device=key_part.device).expand(K, p)
    restricted = loss(restricted_table, classes)  # each s stands for its p pairs: the all-pairs mean
    return {
        "restricted_loss": restricted,
        "excluded_loss": _excluded(logits_all, key_part, train_a, train_b, loss),
    }

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

Modules: `basis` (basis, DFT, neuron frequencies and phases), `sparsity` (energy shares, Gini, key
frequencies, parity bit mass), `logits` (every pair's logits, progress measures), `waves` (frequency
groups' logit waves and their cosine fits). Callers import from here: `from grok_lightning import fourier`.
"""

from grok_lightning.fourier.basis import (
    basis_labels,
    dft_input,
    dft_output,
    fourier_basis,
    frequency_norms,
    group_by_frequency,
    n_frequencies,
    neuron_frequencies,
    neuron_phases,
    row_frequency,
)
from grok_lightning.fourier.logits import hidden_grid, key_frequency_logits, logit_grid, progress_measures
from grok_lightning.fourier.sparsity import (
    KEY_SHARE_FACTOR,
    energy_shares,
    first_bits_mass_share,
    frequency_energy,
    frequency_gini,
    gini,
    inverse_participation_ratio,
    key_frequencies,
    key_frequency_mask,
    sparsity_measures,
    top_k_energy_share,
)
from grok_lightning.fourier.waves import frequency_group_waves, group_wave_fits

__all__ = [
    "KEY_SHARE_FACTOR",
    "basis_labels",
    "dft_input",
    "dft_output",
    "energy_shares",
    "first_bits_mass_share",
    "fourier_basis",
    "frequency_energy",
    "frequency_gini",
    "frequency_group_waves",
    "frequency_norms",
    "gini",
    "group_by_frequency",
    "group_wave_fits",
    "hidden_grid",
    "inverse_participation_ratio",
    "key_frequencies",
    "key_frequency_logits",
    "key_frequency_mask",
    "logit_grid",
    "n_frequencies",
    "neuron_frequencies",
    "neuron_phases",
    "progress_measures",
    "row_frequency",
    "sparsity_measures",
    "top_k_energy_share",
]

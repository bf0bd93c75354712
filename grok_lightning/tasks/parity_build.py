"""Sparse parity's data and MLP (grok_lightning.tasks.parity holds the config and builds these):
distinct random bit sequences per model seed, labelled by the parity of their first k bits, and
the one-layer ReLU MLP with one output logit and a bias row."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from grok_lightning.model import bmm, compute_dtype, haiku_linear_init_, matmul_dtype
from grok_lightning.model_configs import ParityMLPConfig
from grok_lightning.tasks.datamodule import FullBatchDataModule

# Below this many possible sequences a permutation of all of them is cheap; above it, rejection.
_PERMUTE_BELOW = 1 << 22


def distinct_codes(n_bits: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` distinct uniform integers in [0, 2**n_bits), in random order: [count] int64."""
    space = 1 << n_bits
    if count > space:
        raise ValueError(f"cannot draw {count} distinct sequences of {n_bits} bits")
    if space <= _PERMUTE_BELOW:
        return torch.randperm(space, generator=generator)[:count]
    codes = torch.empty(0, dtype=torch.int64)
    while len(codes) < count:  # collisions are rare up here: one round almost always suffices
        codes = torch.unique(torch.cat([codes, torch.randint(0, space, (count,), generator=generator)]))
    # unique() sorts; a seeded shuffle makes the kept subset and its order uniform again
    return codes[torch.randperm(len(codes), generator=generator)[:count]]


def code_bits(codes: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Integer codes [...] -> their bits [..., n_bits] (uint8), bit i = (code >> i) & 1."""
    return ((codes.unsqueeze(-1) >> torch.arange(n_bits)) & 1).to(torch.uint8)


def parity_of_first(bits: torch.Tensor, k: int) -> torch.Tensor:
    """1 where an odd number of the first k bits are set: [..., n_bits] -> [...] int64."""
    return bits[..., :k].long().sum(-1) % 2


class ParityDataModule(FullBatchDataModule):
    """Inputs: bits [K, N, n_bits] (uint8); targets: parity of the first k bits [K, N]."""

    def __init__(self, n_bits: int, k: int, train_size: int, test_size: int, seeds: Sequence[int]):
        self.n_bits, self.k, self.train_size, self.test_size = n_bits, k, train_size, test_size
        super().__init__(seeds)

    def build(self) -> None:
        n = self.train_size + self.test_size
        codes = torch.stack(
            [distinct_codes(self.n_bits, n, torch.Generator().manual_seed(s)) for s in self.seeds]
        )
        bits = code_bits(codes, self.n_bits)  # [K, train + test, n_bits]
        train, test = bits[:, : self.train_size], bits[:, self.train_size :]
        self.train_inputs, self.test_inputs = (train,), (test,)
        self.train_targets, self.test_targets = parity_of_first(train, self.k), parity_of_first(test, self.k)


class ParityMLP(nn.Module):
    """K one-layer ReLU MLPs: logits = relu([bits, 1] W_input) W_output, one logit per example.

    W_input [K, n_bits + 1, n_neurons] (last row: the constant-1 bias input), W_output
    [K, n_neurons, 1]; Haiku Linear init (no bias), each model drawn from its own seed."""

    def __init__(self, cfg: ParityMLPConfig, *, seeds: Sequence[int], n_bits: int, precision: str = "32"):
        super().__init__()
        self.cfg, self.n_bits, self.n_models = cfg, n_bits, len(seeds)
        n_neurons = cfg.n_neurons
        self.dtype, self.mm_dtype = compute_dtype(precision), matmul_dtype(precision)
        K = self.n_models
        self.W_input = nn.Parameter(torch.empty(K, n_bits + 1, n_neurons, dtype=self.dtype))
        self.W_output = nn.Parameter(torch.empty(K, n_neurons, 1, dtype=self.dtype))
        for k, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(int(seed))
            with torch.no_grad():
                haiku_linear_init_(self.W_input.data[k], gen)
                haiku_linear_init_(self.W_output.data[k], gen)

    def encode(self, bits: torch.Tensor) -> tuple[torch.Tensor]:
        """Bits [K, N, n_bits] -> (x [K, N, n_bits + 1],) with the constant-1 column appended."""
        x = bits.to(self.dtype)
        return (torch.cat([x, torch.ones_like(x[..., :1])], dim=-1),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoded inputs -> logits [K, N]."""
        h = torch.relu(bmm(x, self.W_input, self.mm_dtype))
        return bmm(h, self.W_output, self.mm_dtype).squeeze(-1)


def bit_mass(W_input: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of the bit rows' |W_input| mass on the k relevant bits and on the distractors: two [K]
    tensors summing to 1 (the bias row is left out). At init the distractors hold ~(n_bits - k) / n_bits;
    a model that found the parity rule holds almost all of its mass on the relevant bits."""
    per_bit = W_input[:, :-1].detach().abs().sum(-1)  # [K, n_bits]
    total = per_bit.sum(-1)
    relevant = per_bit[:, :k].sum(-1) / total
    return relevant, 1.0 - relevant

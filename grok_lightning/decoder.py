"""The two-layer decoder of Grokfast's modular-arithmetic run (Lee et al. 2024, arXiv:2405.20233;
its main.py, which follows Power et al. 2022's model), K independent models at once. No Lightning here.

    tokens [a, op, b, "="]  (op = p + 1, "=" = p: a vocabulary of p + 2 tokens; 5 positions embedded,
                             4 used, as the original's seq_len=5 with the answer never fed)
    h  = E[token] + P[position]
    per layer (2):  x = LN1(h);  h = x + Attn(x);  h = h + MLP(LN2(h))
        Attn: 4 causal heads of d_model / 4, with biases (torch's nn.MultiheadAttention)
        MLP:  Linear(d, 4d) -> GELU (exact erf) -> Linear(4d, d), with biases
    logits = LN_f(h at "=") @ W_head     p + 2 classes, no bias; the loss and accuracy read all p + 2

The residual of the attention is taken after LN1 (x + Attn(x) with x = LN1(h), not h + Attn(LN1(h))):
that is how the original's Block.forward reads, kept here. LayerNorm eps 1e-5, elementwise affine.

Every parameter has a leading model dimension K, in the orientation x @ W. Each model draws its
weights from its own torch.Generator in the order, shapes and distributions of the original's
`Decoder(dim=128, num_layers=2, num_heads=4, num_tokens=p+2, seq_len=5)` (torch's default inits:
nn.Embedding N(0, 1); nn.Linear kaiming_uniform(a=sqrt(5)) and its bias U(+-1/sqrt(fan_in));
nn.MultiheadAttention's out_proj drawn as a Linear, then its in_proj xavier_uniform and both biases
zeroed), so with torch.manual_seed(seed) the original gets the same numbers
(tests/test_decoder.py builds it from torch's modules and compares). The same generator then draws
the split and each epoch's minibatch order (grok_lightning.tasks.modadd_data, data.split=grokfast).

Two shortcuts, the same numbers rounded in another order: positions 0 and 1 (a, op) are computed
once per value of a and gathered (forward), and the last layer computes its query, attention
output, MLP and LayerNorms at the "=" position only (keys and values at every position): no other
position of that layer reaches the logits.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from grok_lightning.model import TokenModel
from grok_lightning.model_configs import DecoderConfig

N_POSITIONS = 5  # the original embeds 5 positions (a, op, b, =, answer) and feeds the first 4
N_INPUT = 4
SUPPORTED_PRECISIONS = ("32", "64")
LN_EPS = 1e-5


def _linear(fan_out: int, fan_in: int, gen: torch.Generator, bias: bool = True):
    """nn.Linear(fan_in, fan_out)'s draws: weight [fan_out, fan_in] kaiming_uniform(a=sqrt(5)), then
    its bias U(+-1/sqrt(fan_in))."""
    w = nn.init.kaiming_uniform_(torch.empty(fan_out, fan_in), a=math.sqrt(5), generator=gen)
    if not bias:
        return w, None
    bound = 1 / math.sqrt(fan_in)
    return w, nn.init.uniform_(torch.empty(fan_out), -bound, bound, generator=gen)


def original_draws(cfg: DecoderConfig, p: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One model's initial weights, drawn in the original module order (see the module docstring),
    returned in this class's orientation (x @ W), float32. Advances `gen` exactly as the original's
    construction advances torch's global generator."""
    d, V, m = cfg.d_model, p + 2, cfg.d_mlp
    out = {
        "E": nn.init.normal_(torch.empty(V, d), generator=gen),
        "P": nn.init.normal_(torch.empty(N_POSITIONS, d), generator=gen),
    }
    for i in range(cfg.n_layers):
        out_w, _ = _linear(d, d, gen)  # out_proj as a Linear; its bias is then zeroed
        in_w = nn.init.xavier_uniform_(torch.empty(3 * d, d), generator=gen)
        w1, b1 = _linear(m, d, gen)
        w2, b2 = _linear(d, m, gen)
        out.update(
            {
                f"ln1_w{i}": torch.ones(d),
                f"ln1_b{i}": torch.zeros(d),
                f"ln2_w{i}": torch.ones(d),
                f"ln2_b{i}": torch.zeros(d),
                f"W_qkv{i}": in_w.T,
                f"b_qkv{i}": torch.zeros(3 * d),
                f"W_o{i}": out_w.T,
                f"b_o{i}": torch.zeros(d),
                f"W_1{i}": w1.T,
                f"b_1{i}": b1,
                f"W_2{i}": w2.T,
                f"b_2{i}": b2,
            }
        )
    head, _ = _linear(V, d, gen, bias=False)
    out.update({"lnf_w": torch.ones(d), "lnf_b": torch.zeros(d), "W_head": head.T})
    return out


class BatchedDecoder(TokenModel):
    """K decoders of Grokfast's modular-arithmetic run (see the module docstring)."""

    def __init__(self, cfg: DecoderConfig, *, seeds: Sequence[int], p: int, precision: str = "32"):
        self.check_precision(precision, SUPPORTED_PRECISIONS, "the decoder")
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model {cfg.d_model} is not a multiple of n_heads {cfg.n_heads}")
        super().__init__(lambda gen: original_draws(cfg, p, gen), seeds, precision)
        self.cfg, self.p = cfg, p
        mask = torch.full((N_INPUT, N_INPUT), float("-inf")).triu(1)
        self.register_buffer("causal_mask", mask.to(self.dtype), persistent=False)

    def encode(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor]:
        """Index pairs [K, N] -> (tokens [K, N, 4] long: a, op = p + 1, b, "=" = p)."""
        op, eq = torch.full_like(a, self.p + 1), torch.full_like(a, self.p)
        return (torch.stack([a, op, b, eq], dim=-1).long(),)

    def _ln(self, x: torch.Tensor, name: str, i) -> torch.Tensor:
        """LayerNorm over the last dim with model k's weight and bias (`{name}_w{i}`; x [K, ..., d])."""
        w, b = self.weights[f"{name}_w{i}"], self.weights[f"{name}_b{i}"]
        shape = (w.shape[0],) + (1,) * (x.dim() - 2) + (w.shape[1],)
        return F.layer_norm(x, x.shape[-1:], eps=LN_EPS) * w.view(shape) + b.view(shape)

    def _affine(self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """x [K, ..., n] @ W [K, n, m] + b [K, m]."""
        K = x.shape[0]
        flat = x.reshape(K, -1, x.shape[-1])
        return torch.baddbmm(b[:, None], flat, W).view(*x.shape[:-1], W.shape[-1])

    def _qkv(self, h: torch.Tensor, i: int):
        """Block i's LN1(h) [K, M, t, d] and its queries, keys, values, each [K, M, H, t, d_head]."""
        K, M, t, d = h.shape
        H = self.cfg.n_heads
        x = self._ln(h, "ln1", i)
        qkv = self._affine(x, self.weights[f"W_qkv{i}"], self.weights[f"b_qkv{i}"])
        q, k, v = qkv.view(K, M, t, 3, H, d // H).permute(3, 0, 1, 4, 2, 5)
        return x, q, k, v

    def _block(self, h, i, first, past=None, last_only=False):
        """Block i on the residual stream h [K, M, t, d] of positions first..first+t-1, whose
        earlier positions' keys and values are `past` (each [K, M, H, first, d_head]); last_only:
        the last position's output alone [K, M, 1, d]."""
        w = self.weights
        K, M, t, d = h.shape
        x, q, k, v = self._qkv(h, i)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=-2), torch.cat([past[1], v], dim=-2)
        mask = self.causal_mask[first : first + t, : first + t]
        if last_only:
            q, mask, x = q[..., -1:, :], mask[-1:], x[:, :, -1:]
        # a few positions against a few: broadcast products, not thousands of tiny batched matmuls
        scores = (q.unsqueeze(-2) * k.unsqueeze(-3)).sum(-1) / math.sqrt(d // self.cfg.n_heads) + mask
        z = (scores.softmax(-1).unsqueeze(-1) * v.unsqueeze(-3)).sum(-2)  # [K, M, H, tq, d_head]
        z = z.permute(0, 1, 3, 2, 4).reshape(K, M, -1, d)
        h = x + self._affine(z, w[f"W_o{i}"], w[f"b_o{i}"])
        mid = F.gelu(self._affine(self._ln(h, "ln2", i), w[f"W_1{i}"], w[f"b_1{i}"]))
        return h + self._affine(mid, w[f"W_2{i}"], w[f"b_2{i}"])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [K, N, 4] (encode's layout: a, op, b, =) -> logits [K, N, p + 2] at "=".

        Positions 0 and 1 (a and op) see only each other, so in every block their states are
        functions of a alone: they are computed once for each of the p values of a (a prefix table)
        and their keys and values gathered per example; each example computes positions 2 and 3.
        The full forward's numbers, rounded in another order (tests/test_decoder.py)."""
        w = self.weights
        K, N, T = tokens.shape
        if T != N_INPUT:
            raise ValueError(f"tokens must be [K, N, {N_INPUT}] (a, op, b, =), not {tuple(tokens.shape)}")
        dev = tokens.device
        models = torch.arange(K, device=dev)[:, None, None]
        values = torch.arange(self.p, device=dev)
        prefix_tokens = torch.stack([values, torch.full_like(values, self.p + 1)], -1).expand(K, -1, -1)
        prefix = w["E"][models, prefix_tokens] + w["P"][:, None, :2]  # [K, p, 2, d]
        h = w["E"][models, tokens[..., 2:]] + w["P"][:, None, 2:T]  # [K, N, 2, d]
        a = tokens[..., 0]
        rows = models[..., 0]
        n = self.cfg.n_layers
        for i in range(n):
            _, _, pk, pv = self._qkv(prefix, i)  # [K, p, H, 2, d_head]
            h = self._block(h, i, 2, past=(pk[rows, a], pv[rows, a]), last_only=i == n - 1)
            if i < n - 1:
                prefix = self._block(prefix, i, 0)
        out = self._ln(h[:, :, -1], "lnf", "")
        return torch.bmm(out, w["W_head"])

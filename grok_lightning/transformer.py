"""The one-layer transformer of Nanda et al. 2023, "Progress measures for grokking via mechanistic
interpretability" (ICLR 2023, arXiv:2301.05217), K independent models at once. No Lightning here.

    tokens [a, b, "="]  ("=" is token p, so the input vocabulary has p + 1 tokens; n_ctx = 3)
    x0   = W_E[token] + W_pos[position]                       no LayerNorm anywhere
    x1   = x0 + Attn(x0)     4 causal heads of d_head 32, scores / sqrt(d_head), no biases
    x2   = x1 + W_out^T relu(W_in^T x1 + b_in) + b_out        d_mlp 512, biases zero-initialised
    logits = W_U^T x2 at the last ("=") position, p classes   no unembedding bias

Every parameter has a leading model dimension K; each model draws its weights from its own
torch.Generator, so a model's weights never depend on which others share its batch. Shapes (one
model): W_E [p+1, d], W_pos [3, d], W_Q/W_K/W_V [H, d, d_head], W_O [H, d_head, d], W_in [d, d_mlp],
b_in [d_mlp], W_out [d_mlp, d], b_out [d], W_U [d, p] (TransformerLens orientation, x @ W).

Only the "=" position is read, so forward computes the query, attention output and MLP at that
position alone (keys and values at all three): in a one-layer model the other positions' outputs
never reach the logits. Queries, keys and values are gathered from per-token tables (W_E W_Q, ...)
and the scores from a table of every (query token, key token) pair (see _last_position). The
logits are the full forward's, rounded in another order (tests/test_transformer.py compares them
with the original code's full-sequence forward); a float32 training step of the paper's model
costs about a quarter of a plain full-sequence implementation's (on one CPU thread).

What was checked, and where
---------------------------
The paper's code: github.com/mechanistic-interpretability-grokking/progress-measures-paper,
`transformers.py` (commit 5bf4dad; the training code linked from neelnanda.io/grokking-paper):
- Config: p = 113, d_model = 128, num_heads = 4, d_head = d_model // num_heads = 32,
  d_mlp = 4 * d_model = 512, d_vocab = p + 1, n_ctx = 3, act_type "ReLU", use_ln False,
  num_layers 1, frac_train 0.3, lr 1e-3, weight_decay 1.0, num_epochs 50000 (the config default;
  the paper reports 40k), seed 0 (the split's; the model init is not seeded there),
  batch_style "full". The paper's Figure 2 shows 5 seeds.
- Data: every ordered pair (i, j, p), shuffled by Python's random.seed(seed) and cut at
  int(0.3 * p^2) = 3830 training pairs.
- Init (torch.randn, then divided):
    W_E    randn(d_model, d_vocab) / sqrt(d_model)
    W_pos  randn(n_ctx, d_model) / sqrt(d_model)
    W_K, W_Q, W_V  randn(num_heads, d_head, d_model) / sqrt(d_model)   (created in this order)
    W_O    randn(d_model, d_head * num_heads) / sqrt(d_model)
    W_in   randn(d_mlp, d_model) / sqrt(d_model);  b_in zeros(d_mlp)
    W_out  randn(d_model, d_mlp) / sqrt(d_model);  b_out zeros(d_model)   (sqrt(d_model), not d_mlp)
    W_U    randn(d_model, d_vocab) / sqrt(d_vocab)                        (d_vocab = p + 1 = 114)
  No attention or unembedding biases. Modules are created embed, pos_embed, attention (K, Q, V, O),
  MLP (W_in, b_in, W_out, b_out), unembed; this class draws in that order and in those shapes, so
  with torch.manual_seed(seed) on the CPU the original `Transformer(config)` gets the same numbers
  (ours transposed to the orientation above, W_U without its "=" column).
- Attention: scores = q . k, masked causally (tril(scores) - 1e10 * (1 - mask)), then divided by
  sqrt(d_head), softmax over keys. Residual: embed + pos_embed -> + attention -> + MLP -> unembed.
- Optimiser: AdamW(lr 1e-3, weight_decay 1.0, betas (0.9, 0.98)) on all parameters (biases
  included), LambdaLR(min(step / 10, 1)) stepped after each update (10-step linear warmup; update 0
  has lr 0: BatchedAdam's warmup_steps=10), one full-batch step per epoch.
- Loss: cross-entropy on the last position's logits, computed in float32 (the function is called
  cross_entropy_high_precision, but its cast is to float32).

Discrepancies
- Output classes: the original unembeds to all d_vocab = p + 1 tokens and trains on those p + 1
  logits (the "=" logit is never a target and is only pushed down); its analyses drop that column
  (`logits[:, -1, :-1]`). TransformerLens's Grokking_Demo.ipynb uses d_vocab_out = p. This class
  outputs p classes, as the demo, with W_U drawn as the original's first p columns (divisor
  sqrt(p + 1)).
- TransformerLens demo (github.com/TransformerLensOrg/TransformerLens, demos/Grokking_Demo.ipynb):
  the same shapes (n_layers 1, n_heads 4, d_model 128, d_head 32, d_mlp 512, relu,
  normalization_type None, d_vocab p + 1, d_vocab_out p, n_ctx 3), but init_mode "gpt2": every W_*
  ~ N(0, (0.8 / sqrt(d_model))^2) (transformer_lens/HookedTransformer.py `_init_weights_gpt2`,
  initializer_range default 0.8 / sqrt(d_model)), every bias (b_Q/K/V/O, b_in, b_out, b_U) zero and
  frozen (requires_grad False), no warmup, num_epochs 25000, model seed 999, data seed 598 (torch
  randperm split), loss in float64.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from grok_lightning.model import TokenModel
from grok_lightning.model_configs import TransformerConfig

N_CTX = 3
SUPPORTED_PRECISIONS = ("32", "64")


def _original_draws(cfg: TransformerConfig, p: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One model's initial weights, drawn as the original code draws them (shapes, order and
    divisors of transformers.py), returned in this class's orientation, float32 (a float64 model
    casts these draws)."""
    d, H, dh, m, V = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, p + 1
    sd = math.sqrt(d)
    randn = lambda *shape: torch.randn(*shape, generator=gen)  # noqa: E731
    W_E = randn(d, V) / sd
    W_pos = randn(N_CTX, d) / sd
    W_K = randn(H, dh, d) / sd
    W_Q = randn(H, dh, d) / sd
    W_V = randn(H, dh, d) / sd
    W_O = randn(d, H * dh) / sd
    W_in = randn(m, d) / sd
    W_out = randn(d, m) / sd
    W_U = randn(d, V) / math.sqrt(V)
    return {
        "W_E": W_E.T,
        "W_pos": W_pos,
        "W_Q": W_Q.transpose(1, 2),
        "W_K": W_K.transpose(1, 2),
        "W_V": W_V.transpose(1, 2),
        "W_O": W_O.T.reshape(H, dh, d),  # the original's columns are (head, d_head), head-major
        "W_in": W_in.T,
        "b_in": torch.zeros(m),
        "W_out": W_out.T,
        "b_out": torch.zeros(d),
        "W_U": W_U[:, :p],  # the "=" output column is not a class here
    }


class BatchedTransformer(TokenModel):
    """K one-layer transformers for modular addition (see the module docstring)."""

    def __init__(self, cfg: TransformerConfig, *, seeds: Sequence[int], p: int, precision: str = "32"):
        self.check_precision(precision, SUPPORTED_PRECISIONS, "the transformer")
        if p < 2:
            raise ValueError(f"p must be >= 2, not {p}")
        super().__init__(lambda gen: _original_draws(cfg, p, gen), seeds, precision)
        self.cfg, self.p = cfg, p
        self.register_buffer("causal_mask", torch.ones(N_CTX, N_CTX).tril().bool(), persistent=False)

    # -------------------------------------------------------------------------------------------
    def encode(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor]:
        """Index pairs [K, N] -> (tokens [K, N, 3] long: a, b, "=" = p), built once per data set."""
        eq = torch.full_like(a, self.p)
        return (torch.stack([a, b, eq], dim=-1).long(),)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [K, N, 3] -> residual stream before the block [K, N, 3, d]: W_E[token] + W_pos."""
        W_E = self.weights["W_E"]
        K = W_E.shape[0]
        x = W_E[torch.arange(K, device=tokens.device)[:, None, None], tokens]
        return x + self.weights["W_pos"][:, None, : tokens.shape[-1]]

    def _scores(self, x: torch.Tensor, queries: slice) -> torch.Tensor:
        """Attention scores / sqrt(d_head) [K, N, H, n_q, n_k] with the causal mask applied."""
        w = self.weights
        q = torch.einsum("kntd,khde->knhte", x[:, :, queries], w["W_Q"])
        k = torch.einsum("kntd,khde->knhte", x, w["W_K"])
        scores = torch.einsum("knhqe,knhte->knhqt", q, k) / math.sqrt(self.cfg.d_head)
        mask = self.causal_mask[queries, : x.shape[2]]
        return scores.masked_fill(~mask, float("-inf"))

    def attention_patterns(self, tokens: torch.Tensor) -> torch.Tensor:
        """Full causal attention patterns [K, n_heads, N, 3 (query), 3 (key)]: softmax rows sum
        to 1, and a query never attends to later positions (those entries are exactly 0)."""
        x = self.embed(tokens)
        pattern = self._scores(x, slice(None)).softmax(-1)  # [K, N, H, 3, 3]
        return pattern.transpose(1, 2)

    def _last_position(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(residual stream after attention [K, N, d], MLP pre-activations [K, N, d_mlp]) at "=".

        Queries, keys and values are linear in the embedding, so they come from per-token tables
        (W_E W_Q etc., [K, p+1, ...]) and per-position ones (W_pos W_Q): p+1 projections instead of
        3N. The scores are gathered from the table of every (query token, key token) pair's score
        (and every (query token, key position)'s), [K, H, p+1, p+1]: a few million flops, instead
        of a dot product per example. Mathematically the full forward's last row; rounded in
        another order."""
        w = self.weights
        K, N, T = tokens.shape
        if T != N_CTX:
            raise ValueError(f"tokens must be [K, N, {N_CTX}] (a, b, =), not {tuple(tokens.shape)}")
        H, dh, d = self.cfg.n_heads, self.cfg.d_head, self.cfg.d_model
        W_qkv = torch.cat([w["W_Q"], w["W_K"], w["W_V"]], dim=1)  # [K, 3H, d, dh]
        W_qkv = W_qkv.permute(0, 2, 1, 3).reshape(K, d, 3 * H * dh)
        E_q, E_k, E_v = torch.bmm(w["W_E"], W_qkv).view(K, -1, 3, H, dh).unbind(2)  # [K, p+1, H, dh]
        P_q, P_k, P_v = torch.bmm(w["W_pos"][:, :T], W_qkv).view(K, T, 3, H, dh).unbind(2)  # [K, T, H, dh]
        q = (E_q + P_q[:, T - 1 : T]).transpose(1, 2) / math.sqrt(dh)  # [K, H, p+1 (query token), dh]
        S_tok = q @ E_k.permute(0, 2, 3, 1)  # [K, H, query token, key token]
        S_pos = q @ P_k.permute(0, 2, 3, 1)  # [K, H, query token, key position]
        models = torch.arange(K, device=tokens.device).view(K, 1, 1, 1)
        heads = torch.arange(H, device=tokens.device).view(1, 1, 1, H)
        last = tokens[:, :, -1:, None]  # [K, N, 1, 1]
        positions = torch.arange(T, device=tokens.device).view(1, 1, T, 1)
        # the last query sees every position: no mask
        scores = S_tok[models, heads, last, tokens[..., None]] + S_pos[models, heads, last, positions]
        pattern = scores.softmax(dim=2)  # [K, N, T (key), H]
        v = E_v[models[..., 0], tokens] + P_v[:, None, :T]  # [K, N, T, H, dh]
        z = (pattern.unsqueeze(-1) * v).sum(2)  # [K, N, H, dh]
        attn_out = torch.bmm(z.reshape(K, N, H * dh), w["W_O"].reshape(K, H * dh, d))
        resid = w["W_E"][models[:, :, 0, 0], tokens[:, :, -1]] + w["W_pos"][:, None, T - 1] + attn_out
        pre = torch.baddbmm(w["b_in"][:, None], resid, w["W_in"])
        return resid, pre

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [K, N, 3] -> logits [K, N, p] at the last ("=") position."""
        w = self.weights
        resid, pre = self._last_position(tokens)
        resid_post = torch.baddbmm(resid + w["b_out"][:, None], torch.relu(pre), w["W_out"])
        return torch.bmm(resid_post, w["W_U"])

    # ------------------------------------------------------------------------------- analyses
    def neuron_activations(self, tokens: torch.Tensor) -> torch.Tensor:
        """MLP activations after the ReLU at the last position [K, N, d_mlp]."""
        return torch.relu(self._last_position(tokens)[1])

    def embedding(self) -> torch.Tensor:
        """W_E for the p number tokens (not "=") [K, p, d_model]."""
        return self.weights["W_E"][:, : self.p]

    def unembed_of_neurons(self) -> torch.Tensor:
        """The neuron-logit map W_L = W_out W_U [K, d_mlp, p]: each neuron's direct effect on the logits."""
        return torch.bmm(self.weights["W_out"], self.weights["W_U"])

"""Adam with a learning rate and weight decay per model, for parameters shaped [K, ...].

torch's optimisers take one lr / weight decay per parameter group, but the K models of a batched
group live in the same tensors. The update is torch.optim.AdamW's (decoupled decay first, then
the bias-corrected Adam step), with lr and weight decay as [K] vectors. `l1` mode adds
wd * sign(p) to the gradient instead (Adam on loss + wd * sum|p|), as the original's L1 option.

One code path for every batch: each factor is a per-model vector (computed in float64, then
rounded once to the parameter's dtype) broadcast over that model's slice, and every op is
elementwise, so model k's numbers never depend on which other models share its batch (a scalar
path for uniform values rounded differently: the same model gave other results alone). The ops
are chosen to round exactly as the former scalar path (`add_(p, alpha=a)` == `addcmul_(p, a_k)`,
`addcdiv_(m, d, value=s)` == `addcdiv_(m * s_k, d)`, tested): a single run's numbers are unchanged.
"""

from __future__ import annotations

import torch


class BatchedAdam(torch.optim.Optimizer):
    def __init__(self, params, lr, weight_decay, *, betas=(0.9, 0.98), eps=1e-8, decay="l2"):
        if decay not in ("l2", "l1", "none"):
            raise ValueError(f"decay must be l2, l1 or none, not {decay!r}")
        lr = torch.as_tensor(lr, dtype=torch.float64).flatten()
        weight_decay = torch.as_tensor(weight_decay, dtype=torch.float64).flatten()
        super().__init__(params, dict(betas=betas, eps=eps))
        self.decay = decay
        self.n_models = len(lr)
        # decay 0 for every model is an identity (p - p*0 == p): skipping it changes no number
        self.any_decay = decay != "none" and bool((weight_decay != 0).any())
        self._lr, self._wd = lr, weight_decay
        self._per_model: dict[tuple, tuple] = {}

    def freeze(self, k: int) -> None:
        """Model k stops changing: lr and decay 0 make its update p + 0 (grok_lightning.fate: a batch
        trains on while other models still run). Its moments keep updating, unused."""
        self._lr[k], self._wd[k] = 0.0, 0.0
        self._per_model.clear()

    def _vectors(self, p: torch.Tensor):
        """(lr float64, wd, -lr*wd) shaped [K, 1, 1, ...] against p, cached per device/dtype/rank."""
        key = (p.device, p.dtype, p.dim())
        if key not in self._per_model:
            shape = (self.n_models,) + (1,) * (p.dim() - 1)
            lr = self._lr.to(p.device).view(shape)
            wd = self._wd.to(p.device).view(shape)
            # p -= p*(lr*wd) (as optax): p *= (1 - lr*wd) would round the factor to the
            # parameter's dtype, a bias of ~1e-8 per step in float32.
            self._per_model[key] = (lr, wd.to(p.dtype), (-lr * wd).to(p.dtype))
        return self._per_model[key]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                lr64, wd_k, neg_lr_wd_k = self._vectors(p)
                grad = p.grad
                if self.any_decay and self.decay == "l1":
                    grad = grad + wd_k * torch.sign(p)
                elif self.any_decay:
                    p.addcmul_(p, neg_lr_wd_k)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(grad, 1.0 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                bias1 = 1.0 - beta1**t
                bias2_sqrt = (1.0 - beta2**t) ** 0.5
                denom = (v.sqrt() / bias2_sqrt).add_(group["eps"])
                step_k = (-lr64 / bias1).to(p.dtype)  # -lr / bias1 rounded once per model
                p.addcdiv_(m * step_k, denom)
        return loss

"""Adam with a learning rate and weight decay per model, for parameters shaped [K, ...].

torch's optimisers take one lr / weight decay per parameter group, but the K models of a batched
group live in the same tensors. The update is torch.optim.AdamW's (decoupled decay first, then
the bias-corrected Adam step), with lr and weight decay as [K] vectors. `l1` mode adds
wd * sign(p) to the gradient instead (Adam on loss + wd * sum|p|), as the original's L1 option.
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
        # Uniform values (every single run) take the scalar path: fewer kernels per step.
        self.lr_scalar = float(lr[0]) if bool((lr == lr[0]).all()) else None
        self.wd_scalar = float(weight_decay[0]) if bool((weight_decay == weight_decay[0]).all()) else None
        self._lr, self._wd = lr, weight_decay
        self._per_model: dict[tuple, tuple] = {}

    def _vectors(self, p: torch.Tensor):
        """lr and wd broadcastable against p ([K, 1, 1, ...]), cached per device/dtype/rank."""
        key = (p.device, p.dtype, p.dim())
        if key not in self._per_model:
            shape = (self.n_models,) + (1,) * (p.dim() - 1)
            self._per_model[key] = tuple(v.to(p.device, p.dtype).view(shape) for v in (self._lr, self._wd))
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
                lr_k, wd_k = self._vectors(p)
                grad = p.grad
                if self.decay == "l1" and self.wd_scalar != 0.0:
                    wd = self.wd_scalar if self.wd_scalar is not None else wd_k
                    grad = grad + wd * torch.sign(p)
                elif self.decay == "l2" and self.wd_scalar != 0.0:
                    # p -= lr*wd*p (as optax): p *= (1 - lr*wd) would round the factor to the
                    # parameter's dtype, a bias of ~1e-8 per step in float32.
                    if self.lr_scalar is not None and self.wd_scalar is not None:
                        p.add_(p, alpha=-self.lr_scalar * self.wd_scalar)
                    else:
                        p.sub_(p * (lr_k * wd_k))
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(grad, 1.0 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                bias1 = 1.0 - beta1**t
                bias2_sqrt = (1.0 - beta2**t) ** 0.5
                denom = (v.sqrt() / bias2_sqrt).add_(group["eps"])
                if self.lr_scalar is not None:
                    p.addcdiv_(m, denom, value=-self.lr_scalar / bias1)
                else:
                    p.sub_(m.div(denom).mul_(lr_k / bias1))
        return loss

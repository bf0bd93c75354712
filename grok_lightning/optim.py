"""Adam with a learning rate and weight decay per model, for parameters shaped [K, ...].

torch's optimisers take one lr / weight decay per parameter group, but the K models of a batched
group live in the same tensors. The update is torch.optim.AdamW's (decoupled decay first, then
the bias-corrected Adam step), with lr and weight decay as [K] vectors. `l1` mode adds
wd * sign(p) to the gradient instead (Adam on loss + wd * sum|p|), as the original's L1 option;
`coupled_l2` adds wd * p to it (torch.optim.Adam's weight_decay, as Grokfast's runs).

One code path for every batch: each factor is a per-model vector (computed in float64, then
rounded once to the parameter's dtype) broadcast over that model's slice, and every op is
elementwise, so model k's numbers never depend on which other models share its batch (a scalar
path for uniform values rounded differently: the same model gave other results alone). The ops
are chosen to round exactly as the former scalar path (`add_(p, alpha=a)` == `addcmul_(p, a_k)`,
`addcdiv_(m, d, value=s)` == `addcdiv_(m * s_k, d)`, tested): a single run's numbers are unchanged.

Two options, off by default (the default path's arithmetic is untouched: they run only when set;
docs/experiments.md, "Grokfast" and "Warmup"):
- `grokfast`: Lee et al. 2024's gradient filter on the loss gradient before the Adam update,
  g <- g + lamb * filter(g): "ema" mu <- alpha*mu + (1-alpha)*g (mu starts at the first gradient),
  "ma" the mean of the last `grokfast_window` gradients (no change until the window is full). The
  filter's memory is per-parameter optimiser state, saved and restored with the state dict; it is
  elementwise (the window's sum too: _slot_sum), so each model of a batch has its own and a model's
  numbers do not depend on its batch. L1's wd*sign(p) and coupled_l2's wd*p are added after the filter.
- `warmup_steps`: update t (0-based) uses lr * min(t / warmup_steps, 1), as LambdaLR stepped after
  each optimizer.step() (Nanda et al. 2023): update 0 has lr 0. The decay scales with lr (p -= lr*wd*p),
  as torch's AdamW under a schedule, so update 0 changes no parameter.
"""

from __future__ import annotations

import torch


class BatchedAdam(torch.optim.Optimizer):
    def __init__(
        self,
        params,
        lr,
        weight_decay,
        *,
        betas=(0.9, 0.98),
        eps=1e-8,
        decay="l2",
        grokfast="none",
        grokfast_alpha=0.98,
        grokfast_lamb=2.0,
        grokfast_window=100,
        warmup_steps=0,
    ):
        if decay not in ("l2", "l1", "coupled_l2", "none"):
            raise ValueError(f"decay must be l2, l1, coupled_l2 or none, not {decay!r}")
        if grokfast not in ("none", "ema", "ma"):
            raise ValueError(f"grokfast must be none, ema or ma, not {grokfast!r}")
        if not 0 <= grokfast_alpha < 1 or grokfast_lamb < 0 or grokfast_window < 1 or warmup_steps < 0:
            raise ValueError(
                "need 0 <= grokfast_alpha < 1, grokfast_lamb >= 0, grokfast_window >= 1, warmup_steps >= 0"
            )
        lr = torch.as_tensor(lr, dtype=torch.float64).flatten()
        weight_decay = torch.as_tensor(weight_decay, dtype=torch.float64).flatten()
        super().__init__(params, dict(betas=betas, eps=eps))
        self.decay = decay
        self.n_models = len(lr)
        # decay 0 for every model is an identity (p - p*0 == p): skipping it changes no number
        self.any_decay = decay != "none" and bool((weight_decay != 0).any())
        self._lr, self._wd = lr, weight_decay
        self._per_model: dict[tuple, tuple] = {}
        # settings of the run, as lr and wd (not in param_groups: a resume takes the config's)
        self.grokfast = None if grokfast == "none" else grokfast
        self.grokfast_alpha, self.grokfast_lamb = float(grokfast_alpha), float(grokfast_lamb)
        self.grokfast_window, self.warmup_steps = int(grokfast_window), int(warmup_steps)

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

    def _warm(self, p: torch.Tensor, lr64: torch.Tensor, factor: float):
        """(lr * factor float64, -(lr * factor) * wd in p's dtype): the warmup's scaled vectors, as
        _vectors rounds them (computed afresh on each of the warmup's few updates)."""
        lr = lr64 * factor
        wd = self._wd.to(p.device).view(lr.shape)
        return lr, (-lr * wd).to(p.dtype)

    def _filtered(self, state: dict, grad: torch.Tensor) -> torch.Tensor:
        """Grokfast (Lee et al. 2024): grad + lamb * (slow part of the gradient), as a new tensor
        (p.grad is left as it was); the filter's memory lives in `state` with the Adam moments."""
        if self.grokfast == "ema":
            mu = state.get("grokfast_ema")
            if mu is None:  # the reference's first call: alpha*g + (1-alpha)*g, i.e. the gradient
                mu = state["grokfast_ema"] = grad.clone()
            else:
                mu.mul_(self.grokfast_alpha).add_(grad, alpha=1.0 - self.grokfast_alpha)
            return grad.add(mu, alpha=self.grokfast_lamb)
        # "ma": a ring buffer of the last `window` gradients, [window, *p.shape]: window times the
        # parameter's memory (100x for the default window, for every model of a batch), and half
        # that again for a moment while it is summed.
        queue = state.get("grokfast_queue")
        if queue is None or queue.shape[0] != self.grokfast_window:  # new, or the window changed on resume
            queue = state["grokfast_queue"] = grad.new_zeros((self.grokfast_window, *grad.shape))
            state["grokfast_count"] = 0
        count = state["grokfast_count"]
        queue[count % self.grokfast_window].copy_(grad)
        state["grokfast_count"] = count + 1
        if count + 1 < self.grokfast_window:  # warmup: no change until the window is full
            return grad
        return grad.add(_slot_sum(queue).div_(self.grokfast_window), alpha=self.grokfast_lamb)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        step_factors: dict[tuple, torch.Tensor] = {}  # -lr/bias1 per (device, dtype, rank, t): once a step
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
                warming = self.warmup_steps and t <= self.warmup_steps
                if warming:  # update t - 1 (0-based) of the warmup
                    lr64, neg_lr_wd_k = self._warm(p, lr64, (t - 1) / self.warmup_steps)
                grad = p.grad
                if self.grokfast is not None:
                    grad = self._filtered(state, grad)
                if self.any_decay and self.decay == "l1":
                    grad = grad + wd_k * torch.sign(p)
                elif self.any_decay and self.decay == "coupled_l2":  # after the filter, as torch's Adam
                    grad = grad + wd_k * p
                elif self.any_decay:
                    p.addcmul_(p, neg_lr_wd_k)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(grad, 1.0 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                bias1 = 1.0 - beta1**t
                bias2_sqrt = (1.0 - beta2**t) ** 0.5
                denom = v.sqrt().div_(bias2_sqrt).add_(group["eps"])
                key = (p.device, p.dtype, p.dim(), t, bias1)
                step_k = None if warming else step_factors.get(key)
                if step_k is None:
                    step_k = (-lr64 / bias1).to(p.dtype)  # -lr / bias1 rounded once per model
                    step_factors[key] = step_k
                p.addcdiv_(m * step_k, denom)
        return loss


def _slot_sum(queue: torch.Tensor) -> torch.Tensor:
    """queue.sum(0) as a pairwise tree of elementwise adds over its slots: each element's sum is
    added in the same order whatever the other dimensions are (queue.sum(0) is not: its order
    follows the tensor's shape, so a model's numbers would depend on its batch). log2(w) kernels."""
    x = queue
    while x.shape[0] > 1:
        half = x.shape[0] // 2
        total = x[:half] + x[half : 2 * half]
        if x.shape[0] % 2:
            total[0] += x[-1]
        x = total
    return x[0] if x is not queue else x[0].clone()

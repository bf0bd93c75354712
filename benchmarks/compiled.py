"""torch.compile on the plain PyTorch step (forward, loss, backward, the module's BatchedAdam step; no
Lightning) of the main modadd model and of the largest parity shape's batch: compile seconds and
steady-state ms per step, compiled against eager. A compile that fails is reported in the table."""

from __future__ import annotations

import os
import tempfile
import time

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmarks import settings
from grok_lightning.module import build_module
from grok_lightning.sweep.batch import cpu_settings, padded

WARMUP_STEPS = 3  # after the first (compiling) call: recompiles for a second shape of state, caches


def _plain_step(cfg, models):
    """(one optimiser step as a function of the loss function, the eager loss function)."""
    datamodule, module = build_module(
        cfg, [m.seed for m in models], [m.lr for m in models], [m.weight_decay for m in models]
    )
    module.attach_data(datamodule)
    model, objective, opt = module.model, module.objective, module.configure_optimizers()
    inputs, targets = module.data["train"]

    def loss_of(*tensors):
        return objective.loss(model(*tensors[:-1]), tensors[-1]).sum()

    def step(loss_fn):
        opt.zero_grad(set_to_none=True)
        loss_fn(*inputs, targets).backward()
        opt.step()

    return step, loss_of


def _ms_per_step(step, loss_fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step(loss_fn)
    return (time.perf_counter() - start) / steps * 1e3


def one_line_reason(exc: BaseException) -> str:
    """The first line of what went wrong, at its origin: dynamo wraps a backend's own error (e.g.
    a C++ compiler that is missing) in BackendCompilerFailed, whose first line names only the backend."""
    root = exc
    while getattr(root, "inner_exception", None) is not None or root.__cause__ is not None:
        root = getattr(root, "inner_exception", None) or root.__cause__
    lines = str(root).strip().splitlines()
    reason = f"{type(root).__name__}: {lines[0] if lines else 'no message'}"
    return reason if root is exc else f"{type(exc).__name__}, {reason}"


def measure(cfg, models, steps: int, backend="inductor") -> dict:
    cpu_settings(cfg, torch.device("cpu"))
    step, eager = _plain_step(cfg, models)
    _ms_per_step(step, eager, WARMUP_STEPS)
    result = {"eager_ms": _ms_per_step(step, eager, steps)}
    try:
        torch._dynamo.reset()  # each model compiles from scratch: its compile time is its own
        compiled = torch.compile(eager, backend=backend)
        start = time.perf_counter()
        step(compiled)  # the first call compiles forward and backward
        result["compile_s"] = time.perf_counter() - start
        _ms_per_step(step, compiled, WARMUP_STEPS)
        result["compiled_ms"] = _ms_per_step(step, compiled, steps)
    except Exception as exc:  # the table says why; the other benchmarks go on
        result["error"] = one_line_reason(exc)
    return result


def run(console: Console, scale: settings.Scale, parity_k: int = 2) -> dict:
    """parity_k: the batch size to compile for the largest parity shape (the throughput table's K).
    Inductor compiles into a fresh cache folder: the compile seconds are those of a first use."""
    n_neurons, train_size = settings.PARITY_SHAPES[-1]
    cfg, models = settings.parity_group(n_neurons, train_size, scale.compile_steps)
    modadd_cfg, modadd_models = settings.modadd_main(scale.compile_steps)
    backend, steps = scale.compile_backend, scale.compile_steps
    with tempfile.TemporaryDirectory() as cache:
        before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            rows = [
                {"shape": "modadd main, 1 model", **measure(modadd_cfg, modadd_models[:1], steps, backend)},
                {
                    "shape": f"parity {n_neurons} x {train_size}, K={parity_k} (+ copy)",
                    **measure(cfg, padded(models[:parity_k]), steps, backend),
                },
            ]
        finally:
            if before is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR")
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
    table = Table(
        title=f"torch.compile (backend {backend}), plain PyTorch step, {steps} timed steps per side"
    )
    for col in ("step of", "compile s", "eager ms/step", "compiled ms/step", "speed-up"):
        table.add_column(col, justify="left" if col == "step of" else "right")
    for r in rows:
        if "error" in r:
            table.add_row(
                r["shape"], f"[red]failed: {escape(r['error'])}[/]", f"{r['eager_ms']:.3f}", "-", "-"
            )
        else:
            speedup = r["eager_ms"] / r["compiled_ms"]
            table.add_row(
                r["shape"],
                f"{r['compile_s']:.1f}",
                f"{r['eager_ms']:.3f}",
                f"{r['compiled_ms']:.3f}",
                f"{speedup:.2f}x",
            )
    console.print(table)
    return {"steps": steps, "backend": backend, "torch": torch.__version__, "rows": rows}

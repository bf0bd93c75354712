"""torch.compile per group shape: the plain PyTorch step (forward and loss through the training's own
compiled function, grok_lightning.module.compiled_loss, its backward, the module's eager BatchedAdam
step; no Lightning) of each parity shape of the sweep and of the main modadd model, eager against
compiled from the same initial weights. Per shape: ms per step both ways (interleaved blocks),
compile seconds (a fresh cache; from inductor's disk cache once dynamo's in-memory state is dropped,
to which a new process adds ~3 s of its own start-up; a second batch of the shape in the same
process), what train.compile=auto picks at the sweep's step count, and how far every logged metric
of the two sides is apart after the same steps, beside how far an eager run from initial weights
1 ulp away is. A compile that fails is reported in the table."""

from __future__ import annotations

import math
import statistics
import tempfile
import time

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

from benchmarks import settings
from grok_lightning import module as M
from grok_lightning.sweep.batch import cpu_settings, padded

WARMUP_STEPS = 3  # after the first (compiling) call
ROUNDS = 10  # the timed steps run in this many alternating blocks a side
ACCURACIES = ("train/acc", "test/acc")


def _plain(cfg, models):
    """(module with its data attached, one optimiser step as a function of the loss function)."""
    datamodule, module = M.build_module(
        cfg, [m.seed for m in models], [m.lr for m in models], [m.weight_decay for m in models]
    )
    module.attach_data(datamodule)
    model, objective, opt = module.model, module.objective, module.configure_optimizers()
    inputs, targets = module.data["train"]

    def step(loss_fn):
        opt.zero_grad(set_to_none=True)
        loss_fn(model, objective, *inputs, targets).sum().backward()
        opt.step()

    return module, step


def _seconds(step, loss_fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step(loss_fn)
    return time.perf_counter() - start


def _ms_per_step(step, loss_fn, steps: int) -> float:
    return _seconds(step, loss_fn, steps) / steps * 1e3


def metric_differences(eager: torch.Tensor, compiled: torch.Tensor) -> dict:
    """Per logged metric, the largest difference between the sides over the models: relative
    (|a - b| / max(|a|, |b|)) for losses and weight norms, absolute for accuracies (a fraction of
    the examples: one flipped prediction of 5,000 is 2e-4)."""
    out = {}
    for i, name in enumerate(M.METRICS):
        a, b = eager[:, i], compiled[:, i]
        diff = (a - b).abs()
        if name not in ACCURACIES:
            scale = torch.maximum(a.abs(), b.abs())
            diff = torch.where(scale > 0, diff / scale, diff)
        out[name] = float(diff.max())
    return out


def _interleaved(eager_step, compiled_step, compiled, steps: int) -> dict:
    """ms per step of each side and the speed-up, from ROUNDS alternating blocks of steps / ROUNDS
    steps: a burst of another process's load hits both sides alike. Medians over the rounds."""
    block = max(1, steps // ROUNDS)
    eager_ms, compiled_ms = [], []
    for _ in range(ROUNDS):
        eager_ms.append(_ms_per_step(eager_step, M._loss_of, block))
        compiled_ms.append(_ms_per_step(compiled_step, compiled, block))
    ratios = [e / c for e, c in zip(eager_ms, compiled_ms)]
    med = statistics.median
    return {"eager_ms": med(eager_ms), "compiled_ms": med(compiled_ms), "speedup": med(ratios)}


def measure(cfg, models, steps: int, backend="inductor") -> dict:
    """One shape: eager and compiled ms/step from the same initial weights, compile seconds (fresh
    cache, disk cache, second batch), the metrics' differences after the same number of steps; for
    scale, the differences between eager and eager from weights 1 ulp apart."""
    cpu_settings(cfg, torch.device("cpu"))
    eager_module, eager_step = _plain(cfg, models)
    _seconds(eager_step, M._loss_of, 1 + WARMUP_STEPS)
    result = {"eager_ms": _ms_per_step(eager_step, M._loss_of, max(1, steps // ROUNDS))}
    try:
        with tempfile.TemporaryDirectory() as cache, temporary_cache_dir(cache):
            torch._dynamo.reset()  # this shape compiles from scratch: its compile time is its own
            compiled = torch.compile(M._loss_of, backend=backend, dynamic=False)
            module, step = _plain(cfg, models)
            result["compile_s"] = _seconds(step, compiled, 1)  # forward and backward graphs
            _seconds(step, compiled, WARMUP_STEPS)
            # the eager side ran one block more above, to time it without the compile's cache misses
            _seconds(step, compiled, max(1, steps // ROUNDS))
            result.update(_interleaved(eager_step, step, compiled, steps))
            result["max_difference"] = metric_differences(eager_module.measure(), module.measure())
            result["ulp_difference"] = _ulp_reference(cfg, models, eager_module, steps)
            # a second batch of this shape in the same process: new weights, the same compiled code
            _, step = _plain(cfg, models)
            result["next_batch_s"] = _seconds(step, compiled, 1)
            # a new run: nothing compiled in memory, inductor's disk cache as the first one left it
            torch._dynamo.reset()
            torch._inductor.utils.clear_caches()
            compiled = torch.compile(M._loss_of, backend=backend, dynamic=False)
            _, step = _plain(cfg, models)
            result["cached_compile_s"] = _seconds(step, compiled, 1)
    except Exception as exc:  # the table says why; the other shapes go on
        result["error"] = M.one_line_reason(exc)
    finally:
        torch._dynamo.reset()
    return result


def _ulp_reference(cfg, models, eager_module, steps: int) -> dict:
    """metric_differences between the eager run and an eager run whose initial weights are 1 ulp
    apart (each weight nudged to its next float away from zero): what rounding alone moves."""
    module, step = _plain(cfg, models)
    with torch.no_grad():
        for w in module.model.parameters():
            w.copy_(torch.nextafter(w, w.sign() * math.inf))
    block = max(1, steps // ROUNDS)
    _seconds(step, M._loss_of, 1 + WARMUP_STEPS + block + ROUNDS * block)
    return metric_differences(eager_module.measure(), module.measure())


def _shapes(scale: settings.Scale) -> list[tuple[int, int]]:
    shapes = list(settings.PARITY_SHAPES)
    if not scale.quick:  # more points around auto's threshold
        shapes += [s for s in settings.COMPILE_EXTRA_SHAPES if s not in shapes]
    return sorted(shapes, key=lambda s: _parity_multiply_adds(*s))


def _parity_multiply_adds(n_neurons: int, train_size: int) -> int:
    return M.multiply_adds(settings.parity_config(n_neurons, train_size, 1))


def _fmt(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def run(console: Console, scale: settings.Scale, parity_k: int = 2) -> dict:
    """parity_k: models per parity batch (+ the padding copy), by default the throughput table's K
    of the largest parity shape. The modadd row times one model of the main preset."""
    backend, steps = scale.compile_backend, scale.compile_steps
    cases = []
    for n_neurons, train_size in _shapes(scale):
        cfg, models = settings.parity_group(n_neurons, train_size, steps)
        sweep_cfg = settings.parity_config(n_neurons, train_size, settings.PARITY_SWEEP_STEPS)
        label = f"parity {n_neurons} x {train_size}, K={parity_k} (+ copy)"
        cases.append((label, cfg, padded(models[:parity_k]), sweep_cfg))
    modadd_cfg, modadd_models = settings.modadd_main(steps)
    main_cfg, _ = settings.modadd_main(settings.MODADD_MAIN_STEPS)
    cases.append(("modadd main (24 x 500), 1 model", modadd_cfg, modadd_models[:1], main_cfg))

    rows = [
        {
            "shape": label,
            "multiply_adds": M.multiply_adds(cfg),
            "auto": "compiled" if M.compiles(sweep_cfg) else "eager",
            **measure(cfg, models, steps, backend),
        }
        for label, cfg, models, sweep_cfg in cases
    ]

    table = Table(
        title=f"torch.compile (backend {backend}) per shape, plain PyTorch step, {steps} timed steps a side; "
        f"auto: at the sweep's step count (rule: parity, float32, >= {M.COMPILE_MIN_MULTIPLY_ADDS:,} "
        f"multiply-adds a model-step, >= {M.COMPILE_MIN_STEPS:,} steps)"
    )
    columns = [
        "shape",
        "multiply-adds / model",
        "eager ms/step",
        "compiled ms/step",
        "speed-up",
        "compile s: fresh",
        "disk cache",
        "next batch",
        "auto picks",
        "max diff: losses, norms (rel.)",
        "accuracies (abs.)",
        "eager 1 ulp apart: rel.",
        "abs.",
    ]
    for col in columns:
        table.add_column(col, justify="left" if col in ("shape", "auto picks") else "right")
    for r in rows:
        common = [r["shape"], _fmt(r["multiply_adds"], ","), f"{r['eager_ms']:.3f}"]
        if "error" in r:
            table.add_row(*common, f"[red]failed: {escape(r['error'])}[/]", *["-"] * 4, r["auto"], *["-"] * 4)
            continue
        diff, ulp = r["max_difference"], r["ulp_difference"]
        table.add_row(
            *common,
            f"{r['compiled_ms']:.3f}",
            f"{r['speedup']:.2f}x",
            f"{r['compile_s']:.1f}",
            f"{r['cached_compile_s']:.2f}",
            f"{r['next_batch_s']:.3f}",
            r["auto"],
            f"{max(v for k, v in diff.items() if k not in ACCURACIES):.1e}",
            f"{max(diff[k] for k in ACCURACIES):.1e}",
            f"{max(v for k, v in ulp.items() if k not in ACCURACIES):.1e}",
            f"{max(ulp[k] for k in ACCURACIES):.1e}",
        )
    console.print(table)
    return {
        "steps": steps,
        "backend": backend,
        "torch": torch.__version__,
        "rule": {"min_multiply_adds": M.COMPILE_MIN_MULTIPLY_ADDS, "min_steps": M.COMPILE_MIN_STEPS},
        "rows": rows,
    }

"""Numerics ensembles: the same initial weights and data, trained under perturbed numerics, to show
the spread a single grokking step hides (docs/experiments.md, "Numerics").

    python -m grok_lightning.ensemble task=modadd preset=main [perturb=8] [scale=1e-9]
        [precisions=original,64,32,64_mm32,tf32,bf16] [threads=2] [out_dir=...] [key=value ...]

Members:
- one per precision in `precisions` (the first is the reference precision; default: the run's own,
  then 64, 32, 64_mm32, tf32, bf16, the last two a GPU's tensor-core products, see train.precision),
- `threads=N` (0: none): the reference precision with N CPU threads (another summation order),
- `perturb=N` members in the reference precision whose initial weights are multiplied by
  (1 + scale * z), z ~ N(0, 1) drawn per member; they train together as one batch of N models
  (their shapes agree), so the batch itself is one more source of rounding differences.
Per member: the step of test accuracy >= 0.99 with test loss < 1e-2 (`solved_step`), the accuracy
verdict, and for modular addition its learned key frequencies. Overall: how many solved within
the budget, median, quartiles and range of solved_step, with the article's printed value marked.
Writes <out_dir>/members.csv, ensemble.json, histories/<member group>.npz, spread.png.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from grok_lightning import config as C
from grok_lightning import histories, outcome, runs
from grok_lightning.fate import FATES
from grok_lightning.module import METRICS

# Steps the article's own notebooks printed (test accuracy first >= 0.99), marked on the spread.
ARTICLE_STEPS = {("modadd", "main"): 40_800}
COLUMNS = (
    "member",
    "precision",
    "cpu_threads",
    "perturbation",
    "perturbed_share",
    "solved_step",
    "generalise_step",
    "memorise_step",
    "verdict",
    "outcome",
    "fate",
    "steps_trained",
    "final_test_acc",
    "final_test_loss",
    "key_frequencies",
    "test_loss_shape",
    "test_loss_swings",
    "wall_s",
)


def perturb_(model: torch.nn.Module, k: int, scale: float, seed: int) -> float:
    """Multiply model k's parameters by (1 + scale * z), z ~ N(0, 1) from its own generator.
    Returns the share of its parameters that changed: a relative 1e-9 is below one float32 ulp
    (1.2e-7), so float32 parameters keep their values and only float64 ones move."""
    gen = torch.Generator().manual_seed(seed)
    changed = total = 0
    with torch.no_grad():
        for w in model.parameters():
            z = torch.randn(w.shape[1:], generator=gen, dtype=torch.float64)
            new = (w.data[k].to(torch.float64) * (1 + scale * z)).to(w.dtype)
            changed += int((new != w.data[k]).sum())
            total += new.numel()
            w.data[k] = new
    return changed / max(total, 1)


def member_rows(cfg: DictConfig, module, labels: Sequence[dict]) -> list[dict]:
    """One row per model of a fitted module (labels: what distinguishes each member)."""
    from grok_lightning.summary import run_summary
    from grok_lightning.sweep import batch_frequencies

    found = batch_frequencies(cfg, module)
    freqs = found[1] if found else None
    steps, values = module.history_tensor()
    test_loss = values[:, :, METRICS.index("test/loss")]
    rows = []
    for k, label in enumerate(labels):
        s = run_summary(cfg, module, k)
        swings = outcome.zigzag(steps, test_loss[:, k].tolist())
        rows.append(
            {
                **label,
                **{key: s[key] for key in ("solved_step", "generalise_step", "memorise_step", "verdict")},
                "outcome": s["outcome"],
                "fate": s["fate"],  # generalised / not yet / stuck / did not fit (grok_lightning.fate)
                "steps_trained": None if s["final_step"] is None else s["final_step"] + 1,
                "final_test_acc": s["final"].get("test/acc"),
                "final_test_loss": s["final"].get("test/loss"),
                "key_frequencies": " ".join(map(str, freqs[k])) if freqs else "",
                "test_loss_shape": " ".join(x["kind"] for x in swings),
                "test_loss_swings": outcome.swing_words(swings),
            }
        )
    return rows


def fit_members(cfg: DictConfig, n: int, scale: float, console: Console) -> tuple[list[dict], object]:
    """Train n copies of cfg's model (perturbed when scale > 0) as one batch; rows and module."""
    from grok_lightning.module import build_module
    from grok_lightning.sweep import cpu_settings
    from grok_lightning.trainer import build_trainer

    cpu_settings(cfg, torch.device("cpu"))
    seed = cfg.train.seed
    datamodule, module = build_module(cfg, [seed] * n, [cfg.optim.lr] * n, [cfg.optim.weight_decay] * n)
    moved = [
        perturb_(module.model, k, scale, seed=1_000_003 * (k + 1) + seed) if scale > 0 else 0.0
        for k in range(n)
    ]
    run_cfg = cfg.copy()
    run_cfg.train.progress_bar = False
    trainer = build_trainer(run_cfg, None, [], False, checkpoints=False)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    wall = time.perf_counter() - start
    labels = [
        {
            "precision": cfg.train.precision,
            "cpu_threads": cfg.train.cpu_threads,
            "perturbation": f"{scale:g} #{k + 1}" if scale > 0 else "none",
            "perturbed_share": round(moved[k], 4),
            "wall_s": round(wall, 1),
        }
        for k in range(n)
    ]
    return member_rows(cfg, module, labels), module


def spread(rows: Sequence[dict], max_steps: int) -> dict:
    """How many members solved within the budget, and median / quartiles / range of solved_step."""
    steps = [r["solved_step"] for r in rows if r["solved_step"] is not None]
    fates = {f: sum(1 for r in rows if r.get("fate") == f) for f in FATES}
    return {
        "members": len(rows),
        "solved": len(steps),
        "solved_by_nominal": sum(1 for s in steps if s < max_steps),
        "fates": {f: n for f, n in fates.items() if n},  # generalised / not yet / stuck / did not fit
        "max_steps": max_steps,
        **outcome.step_spread(steps),
    }


@dataclass
class Options:
    """The ensemble's own keys; the rest of the command line is the reference run's config."""

    perturb: int = 8
    scale: float = 1e-9
    precisions: Optional[str] = None  # comma-separated; None: the run's own, then 64,32,64_mm32,tf32,bf16
    threads: int = 2
    out_dir: Optional[str] = None


ENSEMBLE_KEYS = tuple(f.name for f in fields(Options))


def parse(argv: Sequence[str]) -> tuple[DictConfig, dict]:
    """(the reference run config, ensemble options). Raises ConfigError, writes nothing."""
    from grok_lightning.machine import estimated_bytes, memory_limit
    from grok_lightning.rundir import _interpolated_key
    from grok_lightning.train import resolve_config, split_args

    special, rest = split_args(argv)
    if extra := sorted(special.keys() - {"task", "preset"}):
        raise C.ConfigError(f"{extra[0]}= is not an ensemble option: its members train from scratch")
    mine = [arg for arg in rest if arg.partition("=")[0] in ENSEMBLE_KEYS]
    overrides = [arg for arg in rest if arg.partition("=")[0] not in ENSEMBLE_KEYS]
    # the run's config as train checks it (interpolations, keys, values, this machine); ours alike
    cfg, _ = resolve_config([*(f"{k}={v}" for k, v in special.items()), *overrides])
    for arg in mine:
        if not arg.partition("=")[2].strip():  # not the default: an empty precisions= trains all six
            raise C.ConfigError(f"{arg.partition('=')[0]}= is empty")
    layer = C.parse_overrides(mine)
    if key := _interpolated_key(OmegaConf.to_container(layer, resolve=False)):
        raise C.ConfigError(f"{key}: interpolations (${{...}}) are not allowed in overrides")
    opts = OmegaConf.to_container(C._merge(OmegaConf.structured(Options), layer, "override"))
    for key, ok, rule in (
        ("perturb", opts["perturb"] >= 0, ">= 0"),
        ("threads", opts["threads"] >= 0, ">= 0 (0: no threads member)"),
        ("scale", 0 <= opts["scale"] < 1, "in [0, 1)"),  # NaN too
    ):
        if not ok:
            raise C.ConfigError(f"{key}={opts[key]} must be {rule}")
    each, limit = estimated_bytes(cfg), memory_limit(cfg)
    if each and opts["perturb"] > limit / each:  # the perturbed members train as one batch
        raise C.ConfigError(
            f"perturb={opts['perturb']}: one batch of that many models (~{each / 2**30:.3g} GiB each) "
            f"needs more than the {limit / 2**30:.3g} GiB of memory here"
        )
    if opts["threads"]:
        try:
            with_train(cfg, cpu_threads=opts["threads"])
        except C.ConfigError as exc:
            raise C.ConfigError(f"threads={opts['threads']}: {exc}") from None
    precisions = (opts["precisions"] or f"{cfg.train.precision},64,32,64_mm32,tf32,bf16").split(",")
    allowed = C.CHOICES["train.precision"]
    for p in precisions:
        if p not in allowed:
            raise C.ConfigError(f"precisions: {p!r} is not one of {', '.join(allowed)}")
    opts["precisions"] = list(dict.fromkeys(precisions))  # keep order, drop repeats
    return cfg, opts


def with_train(cfg: DictConfig, **train) -> DictConfig:
    out = cfg.copy()
    for key, value in train.items():
        out.train[key] = value
    C.validate(out)
    return out


def run(cfg: DictConfig, opts: dict, console: Optional[Console] = None) -> dict:
    from grok_lightning.sweep.spec import make_out_dir

    console = console or Console()
    out = Path(
        opts["out_dir"] or Path("ensembles") / f"{cfg.task}-{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    ref = opts["precisions"][0]
    plan = [(f"precision {p}", with_train(cfg, precision=p), 1, 0.0) for p in opts["precisions"]]
    if opts["threads"]:
        plan.append(
            (
                f"{opts['threads']} threads",
                with_train(cfg, precision=ref, cpu_threads=opts["threads"]),
                1,
                0.0,
            )
        )
    if opts["perturb"]:
        plan.append(
            (f"perturbed x{opts['perturb']}", with_train(cfg, precision=ref), opts["perturb"], opts["scale"])
        )
    n_members = sum(n for _, _, n, _ in plan)
    console.print(
        f"ensemble of {n_members} members ({cfg.task} / {cfg.preset}, {cfg.train.max_steps:,} steps) -> {out}"
    )
    make_out_dir(out)
    rows: list[dict] = []
    threads_before = torch.get_num_threads()
    for i, (name, member_cfg, n, scale) in enumerate(plan):
        group_rows, module = fit_members(member_cfg, n, scale, console)
        torch.set_num_threads(threads_before)
        steps, values = module.history_tensor()
        histories.save_batch(
            out / "histories" / f"m{i:02d}.npz", [f"m{i:02d}.{k}" for k in range(n)], steps, values, METRICS
        )
        for k, row in enumerate(group_rows):
            row["member"] = f"m{i:02d}.{k}"
            rows.append(row)
            console.print(
                f"  {name}: solved at {row['solved_step']}, {row['verdict']}, fate {row['fate']} after "
                f"{row['steps_trained']:,} steps, frequencies [{row['key_frequencies']}], "
                f"test loss: {row['test_loss_swings']}"
            )
        runs.write_csv_table(out / "members.csv", rows, COLUMNS)
    result = {
        "task": cfg.task,
        "preset": cfg.preset,
        "scale": opts["scale"],
        **spread(rows, cfg.train.max_steps),
    }
    result["article_step"] = ARTICLE_STEPS.get((cfg.task, cfg.preset))
    runs.write_json(out / "ensemble.json", {**result, "members_table": rows})
    from grok_lightning.figures import save_png
    from grok_lightning.numerics_figures import ensemble_spread

    save_png(
        ensemble_spread(rows, cfg.train.max_steps, result["article_step"], f"{cfg.task} / {cfg.preset}"),
        out / "spread.png",
    )
    console.print(summary_table(result))
    return result


def summary_table(result: dict) -> Table:
    table = Table(
        title=f"{result['task']} / {result['preset']}: step of test accuracy >= 0.99 and test loss < 1e-2"
    )
    for col in ("members", "solved", "median", "quartiles", "range", "article"):
        table.add_column(col, justify="right")
    solved = result["solved"]
    fmt = lambda v: f"{v:,.0f}"  # noqa: E731
    table.add_row(
        str(result["members"]),
        f"{solved} within {result['max_steps']:,}",
        fmt(result["median"]) if solved else "-",
        f"{fmt(result['q1'])} - {fmt(result['q3'])}" if solved else "-",
        f"{result['min']:,} - {result['max']:,}" if solved else "-",
        fmt(result["article_step"]) if result.get("article_step") else "-",
    )
    return table


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__)
        return 0
    from grok_lightning.sweep.cli import quiet_lightning

    quiet_lightning()
    try:
        cfg, opts = parse(argv)
        run(cfg, opts)
    except (C.ConfigError, OSError) as exc:  # OSError: as train, e.g. a full disk (files are atomic)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

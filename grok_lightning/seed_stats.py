"""Seed statistics of a modular-addition sweep: how often, how late and with what Fourier structure
models generalise. Read from results.csv and histories/ (grok_lightning.histories).

    python -m grok_lightning.seed_stats sweeps/<name> [--nominal N]   # the sweep runs it at its end

Counts models solved by the nominal budget, by the cap, and those that ended stuck (grok_lightning.
fate); the solved steps' median with a bootstrap 90% interval. `--nominal N` (default: the sweep's
train.max_steps) judges each model's fate from its history up to step N and checks that call
against how the model ended (a sweep trained to the cap with a fixed budget measures the rule).
Writes seed_stats.json and seed_stats.png into the sweep directory.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from grok_lightning import histories, outcome, runs
from grok_lightning.fate import Budget

BOOTSTRAP_RESAMPLES = 10_000


def _int(value) -> Optional[int]:
    return None if value in (None, "") else int(float(value))


def median_interval(steps: Sequence[int], level: float = 0.9, seed: int = 0) -> Optional[tuple[float, float]]:
    """Percentile bootstrap interval of the median (fixed generator: the same numbers every time)."""
    if len(steps) < 2:
        return None
    values = np.asarray(steps, dtype=np.float64)
    draws = np.random.default_rng(seed).choice(values, size=(BOOTSTRAP_RESAMPLES, len(values)))
    lo, hi = np.percentile(np.median(draws, axis=1), [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def fate_at(h: dict, budget: Budget, upto: int):
    """A model's fate judged from its history up to step `upto` only."""
    n = int(np.searchsorted(h["steps"], upto, side="left"))
    return budget.fate_of(h["steps"][:n], h["train/acc"][:n], h["test/acc"][:n], h["test/loss"][:n])


def replay_budget(h: dict, budget: Budget) -> tuple[int, str]:
    """(trained steps, why it stopped) had the adaptive budget run on this history: its decisions
    at every logged step from the nominal budget on, each from the rows up to that step."""
    steps = h["steps"]
    for i in range(int(np.searchsorted(steps, budget.nominal - 1)), len(steps)):
        n = i + 1
        f = budget.fate_of(steps[:n], h["train/acc"][:n], h["test/acc"][:n], h["test/loss"][:n])
        reason = budget.decide(int(steps[i]), f)
        if reason is not None:
            return int(steps[i]) + 1, reason
    return int(steps[-1]) + 1, "end of the history"


def fate_agreement(hist: dict[str, dict], budget: Budget) -> dict:
    """Each model's fate at the nominal budget against how it ended: "stuck" (or "did not fit")
    is right when the model had not generalised by the end of its history, "not yet" when it had."""
    table: dict[str, dict] = {}
    right = judged = 0
    for model_id, h in sorted(hist.items()):
        at_nominal = fate_at(h, budget, budget.nominal).fate
        end = outcome.first_solved_step(h["steps"], h["test/loss"], h["test/acc"])
        trained, why = replay_budget(h, budget)
        table[model_id] = {
            "fate_at_nominal": at_nominal,
            "solved_step": end,
            "end_step": int(h["steps"][-1]),
            "adaptive_steps": trained,  # where the adaptive budget would have stopped it
            "adaptive_found": end is not None and end < trained,
            "adaptive_stop": why,
        }
        if at_nominal == "generalised":
            continue
        judged += 1
        right += (end is None) == (at_nominal in ("stuck", "did not fit"))
    return {
        "judged": judged,
        "agree": right,
        "agreement": right / judged if judged else None,
        "models": table,
    }


def seed_statistics(
    rows: Sequence[dict], hist: dict[str, dict], max_steps: int, budget: Optional[Budget] = None
) -> dict:
    """rows: results.csv rows (model_id, solved_step, key_frequencies, fate ...); hist:
    histories.load; budget: the nominal budget and cap the counts use (default: a fixed max_steps)."""
    budget = budget or Budget(max_steps, max_steps, max_steps, max(max_steps // 5, 1))
    solved = [_int(r.get("solved_step")) for r in rows]
    steps = sorted(s for s in solved if s is not None)
    n_keys = Counter(len(str(r.get("key_frequencies") or "").split()) for r in rows)
    per_freq: Counter = Counter()
    for r, s in zip(rows, solved):
        nf = hist.get(r["model_id"], {}).get("neuron_frequency")
        if s is None or nf is None:
            continue
        keys = [int(f) for f in str(r.get("key_frequencies") or "").split()]
        per_freq.update(histories.neurons_per_key_frequency(nf, keys).values())
    for r in rows:  # sweeps written before the fate: judge it from the history's end
        h = hist.get(r["model_id"])
        if not r.get("fate") and h is not None:
            r["fate"] = fate_at(h, budget, int(h["steps"][-1]) + 1).fate
    stuck = sum(1 for r, s in zip(rows, solved) if s is None and r.get("fate") in ("stuck", "did not fit"))
    interval = median_interval(steps)
    out = {
        "models": len(rows),
        "solved": len(steps),
        "solved_fraction": len(steps) / len(rows) if rows else 0.0,
        "max_steps": max_steps,
        "nominal_steps": budget.nominal,
        "solved_by_nominal": sum(1 for s in steps if s < budget.nominal),
        "solved_by_cap": len(steps),
        "stuck": stuck,
        "median_interval_90": list(interval) if interval else None,
        "per_model": [
            {
                "seed": r.get("seed"),
                "solved_step": s,
                "fate": r.get("fate"),
                "key_frequencies": r.get("key_frequencies"),
            }
            for r, s in zip(rows, solved)
        ],
        "solved_steps": steps,
        "n_key_frequencies": {str(k): v for k, v in sorted(n_keys.items())},
        "neurons_per_frequency": {str(k): v for k, v in sorted(per_freq.items())},
    }
    out.update({k: v for k, v in outcome.step_spread(steps).items() if k in ("median", "q1", "q3")})
    if hist and max((int(h["steps"][-1]) for h in hist.values()), default=0) >= budget.nominal:
        out["fate_at_nominal"] = fate_agreement(hist, budget)
    return out


def table(stats: dict, title: str) -> Table:
    t = Table(title=title)
    for col in (
        "models",
        "solved by nominal",
        "by cap",
        "stuck",
        "median step (90% CI)",
        "quartiles",
        "key freqs: models",
        "neurons/freq: count",
    ):
        t.add_column(col, justify="right")
    solved = stats["solved"]
    ci = stats.get("median_interval_90")
    t.add_row(
        str(stats["models"]),
        f"{stats['solved_by_nominal']} by {stats['nominal_steps']:,}",
        f"{solved} ({stats['solved_fraction']:.0%}) by {stats['max_steps']:,}",
        str(stats["stuck"]),
        (f"{stats['median']:,.0f}" + (f" ({ci[0]:,.0f}-{ci[1]:,.0f})" if ci else "")) if solved else "-",
        f"{stats['q1']:,.0f} - {stats['q3']:,.0f}" if solved else "-",
        ", ".join(f"{k}: {v}" for k, v in stats["n_key_frequencies"].items()),
        ", ".join(f"{k}: {v}" for k, v in stats["neurons_per_frequency"].items()) or "-",
    )
    return t


def sweep_budget(sweep_dir: Path, nominal: Optional[int] = None) -> Optional[Budget]:
    """The budget of the sweep's first model (sweep.yaml), its nominal budget replaced by `nominal`."""
    from omegaconf import OmegaConf

    from grok_lightning import config as C

    path = Path(sweep_dir) / "sweep.yaml"
    if not path.is_file():
        return None
    cfg = OmegaConf.create(OmegaConf.load(path).get("first_model_config", {}))
    if "train" not in cfg:
        return None
    cap = max(cfg.train.max_steps, cfg.train.get("step_cap", 0) or 0)
    if nominal:
        cfg.train.max_steps = nominal
    cfg.train.step_cap = max(cap, cfg.train.max_steps)
    return C.budget(cfg)


def write(
    sweep_dir: Path,
    rows: Optional[Sequence[dict]] = None,
    console: Optional[Console] = None,
    nominal: Optional[int] = None,
) -> dict:
    """Compute, save (json + png) and print a sweep's seed statistics."""
    from grok_lightning.figures import save_png
    from grok_lightning.numerics_figures import seed_statistics as figure

    sweep_dir = Path(sweep_dir)
    if rows is None:
        with open(sweep_dir / "results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    max_steps = max((_int(r.get("steps")) or 0) for r in rows) if rows else 0
    stats = seed_statistics(rows, histories.load(sweep_dir), max_steps, sweep_budget(sweep_dir, nominal))
    runs.write_json(sweep_dir / "seed_stats.json", stats)
    title = f"{sweep_dir.name}: first step with test accuracy >= 0.99 and test loss < 1e-2"
    save_png(figure(stats, sweep_dir.name), sweep_dir / "seed_stats.png")
    console = console or Console()
    console.print(table(stats, title))
    if stats.get("fate_at_nominal") and stats["fate_at_nominal"]["judged"]:
        a = stats["fate_at_nominal"]
        console.print(
            f"fate at step {stats['nominal_steps']:,} against the end ({stats['max_steps']:,}): "
            f"{a['agree']} of {a['judged']} models not yet generalised called right ({a['agreement']:.0%})"
        )
    return stats


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    nominal = None
    if len(argv) == 3 and argv[1] == "--nominal" and argv[2].isdigit() and int(argv[2]) > 0:
        nominal, argv = int(argv[2]), argv[:1]
    if len(argv) != 1 or not (Path(argv[0]) / "results.csv").is_file():
        print(
            "error: usage: python -m grok_lightning.seed_stats <sweep dir with results.csv> [--nominal N]",
            file=sys.stderr,
        )
        return 2
    write(Path(argv[0]), nominal=nominal)
    return 0


if __name__ == "__main__":
    sys.exit(main())

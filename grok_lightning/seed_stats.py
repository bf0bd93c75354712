"""Seed statistics of a modular-addition sweep: how often, how late and with what Fourier structure
models generalise. Read from results.csv and histories/ (grok_lightning.histories).

    python -m grok_lightning.seed_stats sweeps/<name>     # recompute; the sweep runs it at its end

Writes seed_stats.json and seed_stats.png into the sweep directory.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console
from rich.table import Table

from grok_lightning import histories, outcome, runs


def _int(value) -> Optional[int]:
    return None if value in (None, "") else int(float(value))


def seed_statistics(rows: Sequence[dict], hist: dict[str, dict], max_steps: int) -> dict:
    """rows: results.csv rows (model_id, solved_step, key_frequencies ...); hist: histories.load."""
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
    out = {
        "models": len(rows),
        "solved": len(steps),
        "solved_fraction": len(steps) / len(rows) if rows else 0.0,
        "max_steps": max_steps,
        "solved_steps": steps,
        "n_key_frequencies": {str(k): v for k, v in sorted(n_keys.items())},
        "neurons_per_frequency": {str(k): v for k, v in sorted(per_freq.items())},
    }
    out.update({k: v for k, v in outcome.step_spread(steps).items() if k in ("median", "q1", "q3")})
    return out


def table(stats: dict, title: str) -> Table:
    t = Table(title=title)
    for col in (
        "models",
        "solved within budget",
        "median step",
        "quartiles",
        "key freqs: models",
        "neurons/freq: count",
    ):
        t.add_column(col, justify="right")
    solved = stats["solved"]
    t.add_row(
        str(stats["models"]),
        f"{solved} ({stats['solved_fraction']:.0%}) within {stats['max_steps']:,}",
        f"{stats['median']:,.0f}" if solved else "-",
        f"{stats['q1']:,.0f} - {stats['q3']:,.0f}" if solved else "-",
        ", ".join(f"{k}: {v}" for k, v in stats["n_key_frequencies"].items()),
        ", ".join(f"{k}: {v}" for k, v in stats["neurons_per_frequency"].items()) or "-",
    )
    return t


def write(sweep_dir: Path, rows: Optional[Sequence[dict]] = None, console: Optional[Console] = None) -> dict:
    """Compute, save (json + png) and print a sweep's seed statistics."""
    from grok_lightning.figures import save_png
    from grok_lightning.numerics_figures import seed_statistics as figure

    sweep_dir = Path(sweep_dir)
    if rows is None:
        with open(sweep_dir / "results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    max_steps = max((_int(r.get("steps")) or 0) for r in rows) if rows else 0
    stats = seed_statistics(rows, histories.load(sweep_dir), max_steps)
    runs.write_json(sweep_dir / "seed_stats.json", stats)
    title = f"{sweep_dir.name}: first step with test accuracy >= 0.99 and test loss < 1e-2"
    save_png(figure(stats, sweep_dir.name), sweep_dir / "seed_stats.png")
    (console or Console()).print(table(stats, title))
    return stats


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1 or not (Path(argv[0]) / "results.csv").is_file():
        print(
            "error: usage: python -m grok_lightning.seed_stats <sweep dir with results.csv>", file=sys.stderr
        )
        return 2
    write(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Results: results.csv, the phase diagram, the outcome table and W&B, from the batch files."""

from __future__ import annotations

import os
from collections import Counter
from typing import Sequence

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from grok_lightning import runs
from grok_lightning.loggers import WANDB_INIT_TIMEOUT_S, reachable_wandb_mode
from grok_lightning.outcome import OUTCOMES
from grok_lightning.sweep.batch import SUMMARY_COLUMNS
from grok_lightning.sweep.plan import batches_done
from grok_lightning.sweep.spec import Model, Sweep, SweepError, key_columns, phase_axes, phase_bars


def row_prefix(sweep: Sweep, model: Model) -> dict:
    point = sweep.points[model.point]
    row = {"model_id": model.id}
    row.update(point)
    row.update(
        {
            k: v
            for k, v in (("optim.lr", model.lr), ("optim.weight_decay", model.weight_decay))
            if k not in row
        }
    )
    row["seed"] = model.seed
    return row


def results_columns(sweep: Sweep) -> list[str]:
    return key_columns(sweep) + [*SUMMARY_COLUMNS, "group", "batch", "rank"]


def merge(sweep: Sweep) -> list[dict]:
    """Every model of this sweep exactly once (a model trained in two batches: the first file)."""
    done = batches_done(sweep.out_dir)
    missing = [m.id for m in sweep.models if m.id not in done]
    if missing:
        raise SweepError(
            f"{len(missing)} models have no results yet (e.g. {missing[0]}); rerun the same command"
        )
    rows = [done[m.id] for m in sweep.models]
    runs.write_csv_table(sweep.out_dir / "results.csv", rows, results_columns(sweep))
    return rows


def outcome_table(rows: Sequence[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("outcome", "models", "share", "median memorise step", "median generalise step"):
        table.add_column(col, justify="left" if col == "outcome" else "right")
    counts = Counter(r["outcome"] for r in rows)

    def median(values):
        values = sorted(v for v in values if v not in (None, ""))
        return f"{values[len(values) // 2]:,}" if values else "-"

    for outcome in OUTCOMES:
        group = [r for r in rows if r["outcome"] == outcome]
        table.add_row(
            outcome,
            str(counts.get(outcome, 0)),
            f"{counts.get(outcome, 0) / max(1, len(rows)):.1%}",
            median(r["memorise_step"] for r in group),
            median(r["generalise_step"] for r in group),
        )
    n_div = sum(bool(r["diverged"]) for r in rows)
    if n_div:
        table.add_row("(diverged)", str(n_div), f"{n_div / len(rows):.1%}", "", "")
    return table


def log_to_wandb(sweep: Sweep, rows: Sequence[dict], fig, table_title: str) -> None:
    cfg = sweep.base_cfg
    if cfg.logger == "csv":
        return
    try:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(
            project=cfg.wandb_project,
            name=f"sweep-{sweep.name}",
            job_type="sweep",
            dir=str(sweep.out_dir),
            mode=reachable_wandb_mode(),
            settings=wandb.Settings(init_timeout=WANDB_INIT_TIMEOUT_S),
            config={"sweep": OmegaConf.to_container(sweep.scfg), "grid": sweep.grid, "seeds": sweep.seeds},
        )
        cols = results_columns(sweep)
        counts = Counter(r["outcome"] for r in rows)
        run.log(
            {
                "sweep/results": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows]),
                "sweep/outcomes": wandb.Table(
                    columns=["outcome", "models"], data=[[o, counts.get(o, 0)] for o in OUTCOMES]
                ),
                "sweep/phase_diagram": wandb.Image(fig, caption=table_title),
            }
        )
        run.finish()
    except Exception as exc:  # W&B must never lose the results already on disk
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"[grok_lightning] W&B unavailable ({msg}); results are in {sweep.out_dir}")


def finish(sweep: Sweep, console: Console) -> list[dict]:
    from grok_lightning.phase_diagram import phase_diagram

    rows = merge(sweep)
    x, y, facets = phase_axes(sweep)
    fig = phase_diagram(rows, x, y, facets, title=sweep.name)
    tmp = sweep.out_dir / ".phase_diagram.tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, sweep.out_dir / "phase_diagram.png")
    title = f"{sweep.name}: {len(rows)} models"
    bars = phase_bars(sweep)
    if bars:
        from grok_lightning.figures import save_png
        from grok_lightning.phase_diagram import outcome_bars

        save_png(outcome_bars(rows, bars, title=sweep.name), sweep.out_dir / "outcome_bars.png")
    console.print(outcome_table(rows, title))
    console.print(
        f"results: [bold]{sweep.out_dir / 'results.csv'}[/], figure: {sweep.out_dir / 'phase_diagram.png'}"
    )
    log_to_wandb(sweep, rows, fig, title)
    from grok_lightning.explorer import write_sweep_page

    console.print(f"explorer -> {write_sweep_page(sweep.out_dir)}")
    if any(r.get("key_frequencies") is not None for r in rows):
        from grok_lightning import seed_stats

        seed_stats.write(sweep.out_dir, rows, console)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return rows

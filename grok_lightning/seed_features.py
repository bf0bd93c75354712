"""What makes a model stuck: features of every model of a modular-addition seed sweep, at
initialisation and early in training, set against its fate in the sweep (generalised within the
budget or not).

    python -m grok_lightning.seed_features <sweep dir> [--steps 2000]

Each model is rebuilt from the sweep's own record (sweep.yaml: first_model_config with the model's
grid point, seed, learning rate and weight decay: the same split, initialisation and precision) and
the sweep's models are trained again together for --steps steps (a padded batch per group, as the
sweep trains them), measured before the first update (step 0) and after steps/4, steps/2 and steps
updates. Fates come from the sweep's solved_step column (grok_lightning.outcome.first_solved_step).
Writes into the sweep directory:

    seed_features.csv   one row per model: its fate, then every feature ("<name>@<step>" for the
                        measured ones, "split_<name>" for the training split's coverage of Z_p)
    seed_features.json  per feature: mean / std / min / max per fate, the ROC AUC of the feature
                        alone (generalised = positive) with permutation p-values, and the rank
                        correlation with the solved step (never solved: last); strongest AUC first
    seed_features.png   the strongest features, one panel each: values per model, coloured by fate

With dozens of features and a few dozen models some AUC far from 0.5 arises by chance alone:
`p_family` is how often shuffled fates give any feature a separation as large, the number that says
whether anything separates.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from grok_lightning import fourier, runs

USAGE = (
    "usage: python -m grok_lightning.seed_features <sweep dir> [--steps N] [--budget B]   "
    "(N = 2000; B: the sweep's train.max_steps)"
)
TOP_K = 5  # frequencies counted by the Fourier top-k share (the dft_sparsity callback's default)
N_PERMUTATIONS = 2000
MAX_BATCH = 64  # models trained together at most (a padded copy comes on top)
FIGURE_FEATURES = 12
FATES = ("generalised", "not_generalised")  # keys of the comparison
NEEDED = {"model_id", "seed", "optim.lr", "optim.weight_decay", "solved_step", "steps"}  # result columns


class FeatureError(ValueError):
    """Input this command cannot use: the message is one line."""


# ------------------------------------------------------------------------------ pure functions
def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n; tied values share the mean of their ranks."""
    _, inverse, counts = np.unique(
        np.asarray(values, dtype=np.float64), return_inverse=True, return_counts=True
    )
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse]


def roc_auc(values: Sequence[float], positive: Sequence[bool]) -> float:
    """P(a positive's value > a negative's), ties counting half (Mann-Whitney U / n1 n0): 1 when the
    feature alone ranks every positive above every negative, 0 when below, 0.5 when it tells nothing.
    Non-finite values are left out; NaN when a group is then empty."""
    v, pos = np.asarray(values, dtype=np.float64), np.asarray(positive, dtype=bool)
    keep = np.isfinite(v)
    v, pos = v[keep], pos[keep]
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    return float((average_ranks(v)[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_permutation_test(
    X: np.ndarray, positive: Sequence[bool], n_permutations: int = N_PERMUTATIONS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """X [n models, F features] (finite). How often do shuffled fates separate as well? Per feature:
    the share of shuffles with |AUC - 0.5| at least the observed one (p_each); over the family: the
    share whose largest |AUC - 0.5| over all F features reaches it (p_family, the multiple-comparison
    answer). Both count the observed labelling, so neither is ever 0."""
    pos = np.asarray(positive, dtype=bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    ranks = np.stack([average_ranks(col) for col in np.asarray(X, dtype=np.float64).T], axis=1)
    rng = np.random.default_rng(seed)
    labels = np.stack([pos, *(rng.permutation(pos) for _ in range(n_permutations))]).astype(np.float64)
    dev = np.abs((labels @ ranks - n1 * (n1 + 1) / 2) / (n1 * n0) - 0.5)  # [1 + n_perm, F]
    observed = dev[0] - 1e-12  # equal separations count as reached despite rounding
    p_each = (dev >= observed).mean(axis=0)
    p_family = (dev.max(axis=1)[:, None] >= observed).mean(axis=0)
    return p_each, p_family


def margins(logits: Tensor, targets: Tensor) -> Tensor:
    """[..., N, C], [..., N] -> [..., N]: the correct logit minus the largest other (> 0: fitted)."""
    index = targets.unsqueeze(-1)
    correct = logits.gather(-1, index).squeeze(-1)
    others = logits.scatter(-1, index, -math.inf).amax(-1)
    return correct - others


def _spread(counts: np.ndarray, name: str) -> dict[str, float]:
    counts = np.asarray(counts, dtype=np.float64)
    return {
        f"{name}_min": float(counts.min()),
        f"{name}_max": float(counts.max()),
        f"{name}_cv": float(counts.std() / counts.mean()) if counts.mean() > 0 else math.nan,
    }


def split_coverage(pairs: np.ndarray, p: int) -> dict[str, float]:
    """How one training split [N, 2] covers Z_p: pairs per target class (a + b) mod p, per
    difference class min(d, p - d) with d = (a - b) mod p (a pair's order is arbitrary), per input
    value (the pairs containing it, (a, a) once): min, max and coefficient of variation of each; and
    the largest non-constant Fourier amplitude of the target counts relative to the constant one (a
    frequency the split over- or under-represents in the sums a + b)."""
    a, b = np.asarray(pairs, dtype=np.int64).T
    target = np.bincount((a + b) % p, minlength=p)
    d = (a - b) % p
    diff = np.bincount(np.minimum(d, p - d), minlength=p // 2 + 1)
    value = np.bincount(a, minlength=p) + np.bincount(b[b != a], minlength=p)
    amplitude = np.abs(np.fft.rfft(target))
    out = {**_spread(target, "target"), **_spread(diff, "difference"), **_spread(value, "value")}
    out["target_fourier_peak"] = float(amplitude[1:].max() / amplitude[0]) if p > 2 else 0.0
    return out


@torch.no_grad()
def model_features(model, objective, data: dict) -> dict[str, np.ndarray]:
    """The measures of K factored MLPs on their data (GrokModule.data), one value per model each."""
    (train_in, train_y), (test_in, test_y) = data["train"], data["test"]
    logits, test_logits = model(*train_in), model(*test_in)
    m = margins(logits, train_y).double()
    W_in_a, W_in_b, W_out = (w.double() for w in model.collapsed())
    out = {f"norm_{name}": w.detach().flatten(1).double().norm(dim=1) for name, w in model.weights.items()}
    out["norm_W_input"], out["norm_W_output"] = W_in_a.flatten(1).norm(dim=1), W_out.flatten(1).norm(dim=1)
    out["logit_std"] = logits.double().flatten(1).std(dim=1)  # over training inputs and classes
    out["margin_median"], out["margin_min"] = m.median(dim=1).values, m.amin(dim=1)
    out["train_loss"], out["train_acc"] = objective.loss(logits, train_y), (m > 0).double().mean(dim=1)
    out["test_loss"], out["test_acc"] = (
        objective.loss(test_logits, test_y),
        objective.accuracy(test_logits, test_y),
    )
    out["test_margin_median"] = margins(test_logits, test_y).double().median(dim=1).values
    if model.cfg.activation == "relu":
        # a neuron no pair can switch on (W_in_a[a] + W_in_b[b] <= 0), and training pairs on which no
        # neuron fires: their logits are all 0, a margin of exactly 0 that no update can move
        out["dead_neurons"] = (W_in_a.amax(dim=1) + W_in_b.amax(dim=1) <= 0).sum(dim=1)
        sides = (W_in_a,) if len(train_in) == 1 else (W_in_a, W_in_b)
        hidden = sum(torch.bmm(x.double(), w) for x, w in zip(train_in, sides))  # [K, N, n]
        out["silent_pairs"] = (hidden <= 0).all(dim=-1).double().mean(dim=1)
    out.update(fourier.sparsity_measures(W_in_a, W_out, top_k=TOP_K))
    neuron_freq = fourier.neuron_frequencies(fourier.dft_input(W_in_a))
    out["n_neuron_freqs"] = torch.tensor([float(len(torch.unique(f))) for f in neuron_freq])
    return {k: v.detach().double().cpu().numpy() for k, v in out.items()}


def group_stats(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"n": 0}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def rank_correlation(values: Sequence[float], solved_steps: Sequence[Optional[int]]) -> float:
    """Spearman's rho between a feature and the step each model generalised at, the models that never
    did tied after all the others: > 0 when higher values go with later (or no) generalisation.
    Non-finite values are left out; NaN when either side is then constant."""
    v = np.asarray(values, dtype=np.float64)
    t = np.array([math.inf if s is None else s for s in solved_steps], dtype=np.float64)
    keep = np.isfinite(v)
    rv, rt = average_ranks(v[keep]), average_ranks(t[keep])
    if keep.sum() < 3 or rv.std() == 0 or rt.std() == 0:
        return math.nan
    return float(np.corrcoef(rv, rt)[0, 1])


def compare(
    features: dict[str, np.ndarray],
    generalised: Sequence[bool],
    solved_steps: Sequence[Optional[int]],
    n_permutations: int = N_PERMUTATIONS,
) -> list[dict]:
    """Per feature: each fate's stats, the ROC AUC (generalised = positive) with permutation
    p-values, and the rank correlation with the solved step (None: never); sorted by |AUC - 0.5|,
    strongest first. Features constant over all models are left out."""
    pos = np.asarray(generalised, dtype=bool)
    names = [k for k, v in features.items() if np.nanmax(v) > np.nanmin(v)]
    rows = [
        {
            "feature": k,
            "auc": roc_auc(features[k], pos),
            "rho_solved_step": rank_correlation(features[k], solved_steps),
            FATES[0]: group_stats(features[k][pos]),
            FATES[1]: group_stats(features[k][~pos]),
        }
        for k in names
    ]
    testable = [i for i, k in enumerate(names) if np.isfinite(features[k]).all()]
    if pos.any() and (~pos).any() and testable:
        X = np.stack([features[names[i]] for i in testable], axis=1)
        p_each, p_family = auc_permutation_test(X, pos, n_permutations)
        for i, pe, pf in zip(testable, p_each, p_family):
            rows[i].update(p_value=float(pe), p_family=float(pf))
    for r in rows:
        r["separation"] = abs(r["auc"] - 0.5) if math.isfinite(r["auc"]) else 0.0
    return sorted(rows, key=lambda r: -r["separation"])


def verdict(rows: Sequence[dict], n_models: int) -> str:
    """One honest sentence on whether anything separates the fates."""
    if not rows or not math.isfinite(rows[0]["auc"]):
        return "no comparison: every model has the same fate"
    top = rows[0]
    family = top.get("p_family", math.nan)
    head = (
        f"strongest: {top['feature']} (AUC {top['auc']:.2f}, p = {top.get('p_value', math.nan):.3g} alone, "
        f"{family:.3g} over all {len(rows)} features)"
    )
    if family < 0.05:
        return f"{head}: separates beyond what {len(rows)} features give by chance over {n_models} models"
    return f"nothing separates beyond chance over {n_models} models and {len(rows)} features; {head}"


# ------------------------------------------------------------------------------ the sweep
def snapshot_steps(steps: int) -> list[int]:
    return sorted({0, steps // 4, steps // 2, steps})


def read_sweep(sweep_dir: Path) -> tuple[DictConfig, list[dict]]:
    """(sweep.yaml, one row per finished model): results.csv, or the finished batches before it."""
    from grok_lightning.sweep.plan import batches_done
    from grok_lightning.tasks import TASKS

    if not sweep_dir.is_dir():
        raise FeatureError(f"{sweep_dir}: no such directory")
    if not (sweep_dir / "sweep.yaml").is_file():
        raise FeatureError(f"{sweep_dir}: not a sweep directory (no sweep.yaml)")
    try:
        spec = OmegaConf.load(sweep_dir / "sweep.yaml")
    except Exception as exc:  # yaml errors come in many classes
        raise FeatureError(f"{sweep_dir / 'sweep.yaml'}: {str(exc).splitlines()[0]}") from None
    if not isinstance(spec, DictConfig) or "first_model_config" not in spec:
        raise FeatureError(f"{sweep_dir / 'sweep.yaml'}: no first_model_config (not written by a sweep)")
    task = TASKS.get(str(spec.get("task")))
    if task is None or "fourier" not in task.analyses_for(spec.first_model_config):
        raise FeatureError(f"{sweep_dir}: task {spec.get('task')!r} is not modular addition")
    if (sweep_dir / "results.csv").is_file():
        with open(sweep_dir / "results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = list(batches_done(sweep_dir).values()) if (sweep_dir / "batches").is_dir() else []
        if rows:
            print(f"{sweep_dir}: no results.csv yet; the {len(rows)} models of its finished batches")
    if not rows:
        raise FeatureError(f"{sweep_dir}: no finished models (no results.csv, no batches/*.json)")
    missing = sorted(NEEDED - set(rows[0]))
    if missing:
        raise FeatureError(f"{sweep_dir}: the results lack {', '.join(missing)}")
    return spec, rows


def _override(key: str, value) -> str:
    """A grid value from results.csv (text) or a batch file (JSON) as an override."""
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


def model_config(spec: DictConfig, row: dict) -> DictConfig:
    """The config the sweep trained this model with: its first model's, at the model's grid point."""
    from grok_lightning import config as C
    from grok_lightning.tasks import TASKS

    cfg = OmegaConf.structured(TASKS[spec.task].config_class)
    point = [_override(k, row[k]) for k in spec.get("grid", {}) if k in row]
    cfg = OmegaConf.merge(cfg, spec.first_model_config, C.parse_overrides(point) if point else {})
    C.validate(cfg)
    return cfg


def _solved(value) -> Optional[int]:
    return None if value in (None, "") else int(float(value))


class Snapshots(L.Callback):
    """Model features at the given optimiser steps (0: before the first update); stops the fit
    after the last one, whatever the step budget."""

    def __init__(self, steps: Sequence[int]):
        self.steps, self.taken = sorted(steps), {}

    def _take(self, trainer, module) -> None:
        step = trainer.global_step
        if step in self.steps and step not in self.taken:
            self.taken[step] = model_features(module.model, module.objective, module.data)
        if step >= self.steps[-1]:
            trainer.should_stop = True

    def on_train_start(self, trainer, module) -> None:
        self._take(trainer, module)

    def on_train_batch_end(self, trainer, module, *args) -> None:
        self._take(trainer, module)


def measure_group(cfg: DictConfig, rows: Sequence[dict], steps: int) -> list[dict]:
    """Train these models (one config apart from seed, lr and weight decay) together for `steps`
    steps; each one's features: its split's coverage and the model measures at each snapshot."""
    from grok_lightning.sweep.batch import fit_batch, padded
    from grok_lightning.sweep.spec import Model

    at = snapshot_steps(steps)
    cfg = cfg.copy()
    cfg.train.max_steps, cfg.train.log_every = steps, 0
    cfg.train.steps_per_call = math.gcd(cfg.train.steps_per_call, *at)  # every snapshot at a call's end
    models = [
        Model(str(r["model_id"]), 0, int(r["seed"]), float(r["optim.lr"]), float(r["optim.weight_decay"]))
        for r in rows
    ]
    snaps = Snapshots(at)
    _, trainer = fit_batch(cfg, padded(models), torch.device("cpu"), callbacks=[snaps])
    pairs = torch.stack(trainer.datamodule.train_inputs, dim=-1).numpy()  # [K + 1, N, 2]
    out = []
    for k in range(len(models)):
        feats = {f"split_{n}": v for n, v in split_coverage(pairs[k], cfg.data.p).items()}
        for step in at:
            feats.update({f"{n}@{step}": float(v[k]) for n, v in snaps.taken[step].items()})
        out.append(feats)
    return out


def sweep_features(sweep_dir: Path, steps: int) -> tuple[DictConfig, list[dict], list[dict]]:
    """(sweep.yaml, rows, one feature dict per row): the rows grouped by config and trained together."""
    spec, rows = read_sweep(sweep_dir)
    groups: dict[str, list[int]] = {}
    configs = {}
    for i, row in enumerate(rows):
        cfg = model_config(spec, row)
        key = OmegaConf.to_yaml(cfg)  # seeds, learning rates and weight decays come per model
        configs.setdefault(key, cfg)
        groups.setdefault(key, []).append(i)
    features: list[Optional[dict]] = [None] * len(rows)
    for key, members in groups.items():
        for start in range(0, len(members), MAX_BATCH):
            chunk = members[start : start + MAX_BATCH]
            for i, feats in zip(chunk, measure_group(configs[key], [rows[i] for i in chunk], steps)):
                features[i] = feats
    return spec, rows, features


# ------------------------------------------------------------------------------ outputs
def figure(comparison: Sequence[dict], features: dict[str, np.ndarray], generalised: np.ndarray, title: str):
    """One panel per strongest feature: each model's value (jittered across), by fate."""
    from matplotlib.ticker import FormatStrFormatter

    from grok_lightning.figures import GENERALISE, MEMORISE, new_figure

    top = [r for r in comparison if math.isfinite(r["auc"])][:FIGURE_FEATURES]
    cols = 4
    nrows = max(1, -(-len(top) // cols))
    fig = new_figure(3.0 * cols, 2.5 * nrows + 1.1)
    axes = np.atleast_1d(fig.subplots(nrows, cols)).ravel()
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, len(generalised))
    for ax, r in zip(axes, top):
        v = features[r["feature"]]
        for x, (colour, mask) in enumerate(((GENERALISE, generalised), (MEMORISE, ~generalised))):
            ax.scatter(x + jitter[mask], v[mask], s=14, color=colour, alpha=0.8, lw=0)
            if mask.any():
                ax.hlines(np.median(v[mask]), x - 0.3, x + 0.3, color=colour, lw=1.5)
        finite = v[np.isfinite(v)]
        if finite.size and finite.min() > 0 and finite.max() > 30 * finite.min():
            ax.set_yscale("log")
        else:  # plain labels: an offset or "1e-6" above the axis would run into the panel's title
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        ax.set_xticks(
            [0, 1], [f"{FATES[0]}\n({int(generalised.sum())})", f"not\n({int((~generalised).sum())})"]
        )
        ax.set_xlim(-0.5, 1.5)
        ax.tick_params(labelsize=8)
        p = r.get("p_value")
        ax.set_title(
            f"{r['feature']}\nAUC {r['auc']:.2f}" + (f", p {p:.2g}" if p is not None else ""), fontsize=9
        )
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(top) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"{title}\neach dot one model, bar: the median; AUC > 0.5: higher in the generalised models; "
        f"p: that feature alone under shuffled fates ({len(comparison)} features tried)",
        fontsize=10,
    )
    fig.subplots_adjust(
        left=0.07, right=0.98, bottom=0.08, top=1 - 1.2 / (2.5 * nrows + 1.1), hspace=0.75, wspace=0.35
    )
    return fig


def table(comparison: Sequence[dict], title: str, n: int = 15):
    from rich.table import Table

    t = Table(title=title)
    for col in ("feature", "mean generalised", "mean not generalised", "AUC", "p", "p over all", "rho step"):
        t.add_column(col, justify="left" if col == "feature" else "right", no_wrap=col == "feature")
    for r in comparison[:n]:
        g, s = r[FATES[0]], r[FATES[1]]
        t.add_row(
            r["feature"],
            f"{g['mean']:.4g} ± {g['std']:.2g}" if g["n"] else "-",
            f"{s['mean']:.4g} ± {s['std']:.2g}" if s["n"] else "-",
            f"{r['auc']:.3f}",
            f"{r['p_value']:.3g}" if "p_value" in r else "-",
            f"{r['p_family']:.3g}" if "p_family" in r else "-",
            f"{r['rho_solved_step']:.2f}",
        )
    return t


def write(sweep_dir: Path, steps: int = 2000, budget: Optional[int] = None, console=None) -> dict:
    """Measure, compare, and write seed_features.csv / .json / .png into the sweep directory."""
    from rich.console import Console

    from grok_lightning.figures import save_png

    sweep_dir = Path(sweep_dir)
    spec, rows, per_model = sweep_features(sweep_dir, steps)
    names = list(per_model[0])
    features = {n: np.array([f[n] for f in per_model], dtype=np.float64) for n in names}
    solved = [_solved(r.get("solved_step")) for r in rows]
    # one budget for all: an adaptive budget (train.step_cap) lets some models run past the nominal one
    budget = budget or int(spec.first_model_config.train.max_steps)
    generalised = np.array([s is not None and s < budget for s in solved])
    grid = [k for k in spec.get("grid", {}) if k in rows[0]]
    table_rows = [
        {
            "model_id": r["model_id"],
            **{k: r[k] for k in grid},
            "seed": r["seed"],
            "solved_step": s,
            "generalised": bool(g),
            **f,
        }
        for r, s, g, f in zip(rows, solved, generalised, per_model)
    ]
    runs.write_csv_table(
        sweep_dir / "seed_features.csv",
        table_rows,
        ["model_id", *grid, "seed", "solved_step", "generalised", *names],
    )
    comparison = compare(features, generalised, solved)
    result = {
        "sweep": sweep_dir.name,
        "models": len(rows),
        FATES[0]: int(generalised.sum()),
        FATES[1]: int((~generalised).sum()),
        "budget": budget,
        "fate": f"generalised = a solved_step (test accuracy >= 0.99 and test loss < 1e-2) within "
        f"{budget:,} steps",
        "retrain_steps": steps,
        "snapshots": snapshot_steps(steps),
        "permutations": N_PERMUTATIONS,
        "verdict": verdict(comparison, len(rows)),
        "features": comparison,
    }
    runs.write_json(sweep_dir / "seed_features.json", result)
    title = f"{sweep_dir.name}: {result[FATES[0]]} of {len(rows)} generalised within {budget:,} steps"
    save_png(figure(comparison, features, generalised, title), sweep_dir / "seed_features.png")
    console = console or Console()
    console.print(table(comparison, title))
    console.print(result["verdict"])
    return result


def parse_args(argv: Sequence[str]) -> tuple[Path, int, Optional[int]]:
    """(sweep dir, --steps, --budget or None); each option as `--name N` or `--name=N`."""
    args, values = list(argv), {"--steps": "2000", "--budget": None}
    for name in values:
        for i, a in enumerate(args):
            if a == name or a.startswith(name + "="):
                values[name] = a.split("=", 1)[1] if "=" in a else (args[i + 1] if i + 1 < len(args) else "")
                del args[i : i + (1 if "=" in a else 2)]
                if not values[name].isdigit() or int(values[name]) < 1:
                    raise FeatureError(f"{name} {values[name]!r}: must be a whole number >= 1")
                break
    if len(args) != 1 or args[0].startswith("-"):
        raise FeatureError(USAGE)
    budget = values["--budget"]
    return Path(args[0]), int(values["--steps"]), None if budget is None else int(budget)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from grok_lightning import config as C
    from grok_lightning.sweep.cli import quiet_lightning

    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return 0
    quiet_lightning()
    try:
        write(*parse_args(argv))
    except (FeatureError, C.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

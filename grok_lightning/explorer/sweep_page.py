"""The sweep page: the phase diagram of results.csv with live thresholds, and any cell's curves
from histories/*.npz. The page re-classifies every model with the article's rule from the three
numbers results.csv keeps per model (min train loss, min test loss, max test/train ratio), the
rule of grok_lightning.outcome.outcome_class. With histories/, the same three numbers at up to
STEP_CUTS logged steps let a step slider show the diagram as the models stood at that step. Where
grok_lightning.seed_features has run, the page also shows its comparison of stuck and generalising
models (seed_features.json and .png)."""

from __future__ import annotations

import base64
import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

from grok_lightning import outcome
from grok_lightning.outcome import OUTCOMES
from grok_lightning.phase_diagram import DIVERGED_COLOUR, OUTCOME_COLOURS, _fmt, flags_label, short_name

from ._page import finite_or_none, packed, write_page
from .names import ExplorerError

SEED_FEATURE_ROWS = 15  # the strongest features shown; seed_features.json keeps them all
CURVE_POINTS = 300  # per model and curve: enough for a log-scale loss curve, small for 1,000+ models
STEP_CUTS = 100  # steps of the step slider: 1,125 models x 100 x 16 bytes = 1.8 MB, 2.4 MB in base64
LOSS_FLOOR = 1e-15  # losses below (an exact 0) are drawn at this floor of the log axis
DEFAULT_L, DEFAULT_R = 1e-5, 5e4


def write_sweep_page(sweep_dir) -> Path:
    """(Re)build <sweep_dir>/explorer.html from results.csv, sweep.yaml and histories/."""
    sweep_dir = Path(sweep_dir)
    return write_page(sweep_dir, sweep_payload(sweep_dir))


def sweep_payload(sweep_dir: Path) -> dict:
    rows = read_results(sweep_dir)
    spec = read_spec(sweep_dir)
    x, y, facets = axes(spec, rows)
    panel_of = {key: i for i, key in enumerate(_distinct(rows, facets))}
    xs, ys = _distinct(rows, [x] if x else []), _distinct(rows, [y] if y else [])
    cells: dict[tuple, int] = {}
    cell_of = []
    for r in rows:
        key = (
            panel_of[_point(r, facets)],
            xs.index(_point(r, [x] if x else [])),
            ys.index(_point(r, [y] if y else [])),
        )
        cell_of.append(cells.setdefault(key, len(cells)))
    L, R = thresholds(spec)
    notes = []
    saved = read_histories(sweep_dir)
    curves, freqs = histories_payload(saved, [r["model_id"] for r in rows])
    if curves is None:
        notes.append("no histories/ in this sweep: the phase diagram only, no loss curves per cell")
    at_steps = steps_payload(saved, rows, loss_floor(spec)) if curves is not None else None
    features = seed_features_payload(sweep_dir, notes)
    return {
        "kind": "sweep",
        "title": f"sweep {sweep_dir.name}",
        "description": str(spec.get("description") or ""),
        "task": str(spec.get("task") or ""),
        "notes": notes,
        "axes": {
            "x": _axis(x, xs),
            "y": _axis(y, ys),
            "panels": [flags_label(facets, key) for key in panel_of],  # one flag per line, as the PNG
        },
        "cells": [{"panel": p, "x": xi, "y": yi} for (p, xi, yi) in cells],
        "models": model_payload(rows, cell_of),
        "thresholds": {"L": L, "R": R},
        "outcomes": list(OUTCOMES),
        "colours": {**OUTCOME_COLOURS, "diverged": DIVERGED_COLOUR},
        "curves": curves,
        "freqs": freqs,
        "at_steps": at_steps,
        "seed_features": features,
    }


# ------------------------------------------------------------------------------------------ reading
def read_results(sweep_dir: Path) -> list[dict]:
    path = sweep_dir / "results.csv"
    if not path.is_file():
        raise ExplorerError(f"{sweep_dir}: not a sweep directory (no results.csv)")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ExplorerError(f"{path}: cannot read ({exc})") from None
    needed = {"model_id", "min_train_loss", "min_test_loss", "max_ratio"}
    if not rows or not needed <= set(rows[0]):
        raise ExplorerError(f"{path}: no rows with {', '.join(sorted(needed))}")
    return rows


def read_spec(sweep_dir: Path) -> DictConfig:
    path = sweep_dir / "sweep.yaml"
    if not path.is_file():
        return OmegaConf.create({})
    try:
        spec = OmegaConf.load(path)
    except Exception as exc:  # yaml errors come in many classes
        raise ExplorerError(f"{path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(spec, DictConfig):
        raise ExplorerError(f"{path}: expected a mapping")
    return spec


def axes(spec: DictConfig, rows: list[dict]) -> tuple[Optional[str], Optional[str], list[str]]:
    """The phase diagram's axes as the sweep chose them (grok_lightning.sweep.spec.phase_axes)."""
    from grok_lightning import config as C
    from grok_lightning.sweep.spec import phase_axes

    grid = OmegaConf.to_container(spec.grid) if "grid" in spec else {}
    grid = {k: v for k, v in grid.items() if k in rows[0]}
    chosen = spec.get("phase_diagram") or {}
    scfg = OmegaConf.create({"phase_diagram": {"x": chosen.get("x"), "y": chosen.get("y")}})
    try:
        return phase_axes(SimpleNamespace(grid=grid, scfg=scfg))
    except C.ConfigError as exc:
        raise ExplorerError(f"sweep.yaml: {exc}") from None


def thresholds(spec: DictConfig) -> tuple[float, float]:
    out = OmegaConf.select(spec, "first_model_config.outcome", default=None) or {}
    return float(out.get("loss_threshold", DEFAULT_L)), float(out.get("ratio_threshold", DEFAULT_R))


def loss_floor(spec: DictConfig) -> float:
    """The floor the sweep's rule read its losses with (outcome.loss_floor; results.csv is floored)."""
    return float(OmegaConf.select(spec, "first_model_config.outcome.loss_floor", default=0.0) or 0.0)


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def _point(row: dict, keys: list[str]) -> tuple:
    return tuple(_value(row[k]) for k in keys)


def _distinct(rows: list[dict], keys: list[str]) -> list[tuple]:
    values = list(dict.fromkeys(_point(r, keys) for r in rows))
    try:
        return sorted(values)
    except TypeError:  # mixed types: first-seen order
        return values


def _axis(key: Optional[str], values: list[tuple]) -> dict:
    return {
        "key": key,
        "label": short_name(key) if key else "",
        "values": [_fmt(v[0]) if v else "" for v in values],
    }


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _int_or_none(text: str) -> Optional[int]:
    try:
        return int(float(text))
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------------ models
def model_payload(rows: list[dict], cell_of: list[int]) -> dict:
    """The three numbers the rule needs go as float64: the page compares them with L and R exactly as
    Python does (inf and NaN included)."""
    return {
        "id": [r["model_id"] for r in rows],
        "cell": cell_of,
        "seed": [r.get("seed", "") for r in rows],
        "min_train": packed([_float(r["min_train_loss"]) for r in rows], "f8"),
        "min_test": packed([_float(r["min_test_loss"]) for r in rows], "f8"),
        "max_ratio": packed([_float(r["max_ratio"]) for r in rows], "f8"),
        "diverged": [r.get("diverged") in ("True", "true", "1") for r in rows],
        "memorise_step": [_int_or_none(r.get("memorise_step", "")) for r in rows],
        "generalise_step": [_int_or_none(r.get("generalise_step", "")) for r in rows],
    }


def seed_features_payload(sweep_dir: Path, notes: list) -> Optional[dict]:
    """grok_lightning.seed_features' comparison, its strongest features, and its figure as a data: URI;
    None without seed_features.json. A file that cannot be read costs a note, not the page."""
    path = sweep_dir / "seed_features.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        rows = [
            {
                "feature": str(r["feature"]),
                "generalised": finite_or_none(r["generalised"].get("mean")),
                "not_generalised": finite_or_none(r["not_generalised"].get("mean")),
                "auc": finite_or_none(r["auc"]),
                "p_family": finite_or_none(r.get("p_family")),
                "rho": finite_or_none(r.get("rho_solved_step")),
            }
            for r in saved["features"][:SEED_FEATURE_ROWS]
        ]
        counts = {k: int(saved[k]) for k in ("models", "generalised", "not_generalised", "budget")}
        png = sweep_dir / "seed_features.png"
        figure = base64.b64encode(png.read_bytes()).decode("ascii") if png.is_file() else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        notes.append(f"seed_features.json: cannot read ({exc!r}); no stuck-vs-generalising section")
        return None
    return {
        **counts,
        "verdict": str(saved.get("verdict", "")),
        "retrain_steps": finite_or_none(saved.get("retrain_steps")),
        "rows": rows,
        "figure": figure and "data:image/png;base64," + figure,
    }


def read_histories(sweep_dir: Path) -> dict:
    """grok_lightning.histories.load, or {} without histories/."""
    from grok_lightning import histories

    if not (sweep_dir / "histories").is_dir():
        return {}
    try:
        return histories.load(sweep_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise ExplorerError(f"{sweep_dir / 'histories'}: cannot read ({exc})") from None


def steps_payload(saved: dict, rows: list[dict], floor: float) -> dict:
    """The rule's three numbers over each model's logged steps up to each of STEP_CUTS steps (the
    longest history's, thinned; its last step included): [models x cuts], row-major. Running minima
    and maxima of the floored losses, the same numbers grok_lightning.outcome.summarise gives the
    truncated history. A model without a history keeps results.csv's numbers at every cut; at the
    last cut the page reads results.csv's (histories/ holds float32, a float64 run's rows do not)."""
    longest = max((np.asarray(e["steps"]) for e in saved.values() if "steps" in e), key=len)
    cuts = longest[_thin(len(longest), STEP_CUTS)]
    n = len(cuts)
    min_train, min_test = np.empty((len(rows), n), np.float32), np.empty((len(rows), n), np.float32)
    max_ratio = np.empty((len(rows), n), np.float64)
    for k, row in enumerate(rows):
        entry = saved.get(row["model_id"])
        if entry is None or "train/loss" not in entry or "test/loss" not in entry:
            min_train[k], min_test[k] = _float(row["min_train_loss"]), _float(row["min_test_loss"])
            max_ratio[k] = _float(row["max_ratio"])
            continue
        train = outcome.floored(entry["train/loss"], floor)
        test = outcome.floored(entry["test/loss"], floor)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = test / train
        upto = np.searchsorted(np.asarray(entry["steps"]), cuts, side="right")  # rows at or before
        # the losses are float32 values (floored by a float32 2^-23): float32 holds their minima exactly
        min_train[k] = _running(np.fmin, train, np.inf)[upto]
        min_test[k] = _running(np.fmin, test, np.inf)[upto]
        max_ratio[k] = _running(np.fmax, ratio, 0.0)[upto]
    return {
        "steps": packed([int(c) for c in cuts], "i4"),
        "min_train": packed(min_train.ravel(), "f4"),
        "min_test": packed(min_test.ravel(), "f4"),
        "max_ratio": packed(max_ratio.ravel(), "f8"),
    }


def _running(ufunc, values: np.ndarray, initial: float) -> np.ndarray:
    """[initial, then ufunc over values[:1], values[:2], ...]: nanmin / nanmax(initial=...) of each
    prefix (a NaN is skipped, as they skip it)."""
    values = np.where(np.isnan(values), initial, values)
    return ufunc.accumulate(np.concatenate([[initial], values]))


def histories_payload(saved: dict, model_ids: list[str]) -> tuple[Optional[dict], Optional[list]]:
    """Every model's train / test loss curve (log10, float16, thinned to CURVE_POINTS) and, for
    modular addition, each model's neurons per learned frequency."""
    if not saved:
        return None, None
    step_sets: dict[tuple, int] = {}
    set_of, train, test, offsets = [], [], [], [0]
    for model_id in model_ids:
        entry = saved.get(model_id)
        if entry is None or "train/loss" not in entry or "test/loss" not in entry:
            set_of.append(-1)
            offsets.append(offsets[-1])
            continue
        keep = _thin(len(entry["steps"]))
        steps = tuple(int(s) for s in np.asarray(entry["steps"])[keep])
        set_of.append(step_sets.setdefault(steps, len(step_sets)))
        train.append(_log10(entry["train/loss"][keep]))
        test.append(_log10(entry["test/loss"][keep]))
        offsets.append(offsets[-1] + len(steps))
    if not step_sets:
        return None, None
    curves = {
        "step_sets": [packed(list(s), "i4") for s in step_sets],
        "set_of": set_of,
        "offset": packed(offsets, "i4"),
        "train": packed(np.concatenate(train), "f2"),
        "test": packed(np.concatenate(test), "f2"),
    }
    freqs = [_frequency_counts(saved.get(m, {}).get("neuron_frequency")) for m in model_ids]
    return curves, freqs if any(f is not None for f in freqs) else None


def _thin(n: int, points: int = CURVE_POINTS) -> np.ndarray:
    if n <= points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, points).round().astype(int))


def _log10(loss) -> np.ndarray:
    values = np.asarray(loss, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.log10(np.where(values >= 0, np.maximum(values, LOSS_FLOOR), np.nan))


def _frequency_counts(neuron_frequency) -> Optional[list]:
    """[[frequency, neurons], ...], most neurons first."""
    if neuron_frequency is None:
        return None
    freqs, counts = np.unique(np.asarray(neuron_frequency), return_counts=True)
    order = np.lexsort((freqs, -counts))
    return [[int(freqs[i]), int(counts[i])] for i in order]

"""Early warning for grokking: from a run's own history up to step t (nothing later), will it
generalise within the cap, and roughly when?

    python -m grok_lightning.forecast evaluate <sweep dir> [<sweep dir> ...] [--t 10000,20000] [--cap 150000]
    python -m grok_lightning.forecast build-reference <sweep dir> [...] \
        --out grok_lightning/forecast_reference.json

Method. `features` summarises the curves up to t in windows measured in steps (not rows), so a run
logged every 100 steps and one logged every 300 give the same numbers: the test loss now, its slope
over the last 5,000 and 20,000 steps, how far it has come down from its maximum, test accuracy,
the weight norm, and a train-loss-only group after Notsawo et al. 2023 ("Predicting grokking long
before it happens"), who predict grokking from oscillations of the early training loss measured by
the energy of its Fourier spectrum: here the low-frequency spectral energy of the detrended log train
loss and its spikes (in the main setting's float32 seed sweep there are none: the train loss moves
< 0.07 decade off its trend, so that group works through its level and slope). A classifier for
P(generalises within the cap) and a predictor of the step are fitted on a reference set of other
runs of the same setting; each is chosen among a few candidates (L2 logistic regression by Newton
steps / k-NN; ridge on log(step - t) / k-NN median) by leave-one-seed-out *inside* the reference,
so a held-out seed never tunes anything.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from grok_lightning import outcome

# Windows in steps. NOW: the "current" value is a median over this (a spike or one noisy row does not
# decide it); SHORT/LONG: slopes; SPECTRAL: the train-loss spectrum, binned on BIN-step cells anchored at
# t so any log cadence <= BIN fills the same cells; LOW_PERIOD: "low frequency" = periods this long or
# longer (Notsawo et al.: the slow oscillations are the grokking signature, not step-to-step noise).
NOW, SHORT, LONG, SPECTRAL, BIN, LOW_PERIOD = 1_000, 5_000, 20_000, 10_000, 500, 2_000
# While memorising (step ~300 in the main setting) the train loss falls ~6 decades and the test loss
# rises ~1: that transient is neither an oscillation nor the slow trend, so slopes and the spectrum
# only see rows after SETTLE.
SETTLE = 2_000
SPIKE_DECADES = 0.5  # a spike: the log train loss 0.5 decade (x3) above its linear trend
FLOOR = 1e-12  # float32 losses can read 0: clip before log10

TRAIN_ONLY = ("log_train", "train_slope", "train_low_energy", "train_spikes", "train_max_spike")
# Not the step of the test-loss peak: it sits at 1,200-1,500 in the main setting, so logging every 300 vs
# 900 steps moves it more than it varies between seeds (measured on the float32 seed sweep).
TEST_AND_WEIGHTS = (
    "log_test",
    "test_slope_short",
    "test_slope_long",
    "log_fall_rate",
    "test_below_max",
    "test_acc",
    "test_acc_slope",
    "log_l2",
    "l2_slope",
)
FEATURES = TEST_AND_WEIGHTS + TRAIN_ONLY
FEATURE_SETS = {"all": FEATURES, "train": TRAIN_ONLY}

# Candidates, tried in this order (ties keep the earlier one); chosen by inner leave-one-seed-out.
CLASSIFIERS = (("logistic", 1.0), ("logistic", 0.1), ("logistic", 10.0), ("knn", 3), ("knn", 5), ("knn", 7))
REGRESSORS = (("ridge", 1.0), ("ridge", 10.0), ("knn", 3))
DEFAULT_T = (10_000, 20_000)
DEFAULT_CAP = 150_000
GRID = tuple(range(2_500, 50_001, 2_500))  # reference feature vectors at these t
REFERENCE_PATH = Path(__file__).with_name("forecast_reference.json")
# The settings a reference must share with a run (sweep.yaml first_model_config paths).
SETTINGS = {
    "p": "data.p",
    "d_embed": "model.d_embed",
    "n_neurons": "model.n_neurons",
    "train_fraction": "data.train_fraction",
    "lr": "optim.lr",
    "weight_decay": "optim.weight_decay",
    "precision": "train.precision",
    "init": "model.init",
}


# ------------------------------------------------------------------------------------- features
def _log(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(x), np.log10(np.clip(x, FLOOR, None)), np.nan)


def _now(s: np.ndarray, y: np.ndarray, t: float) -> float:
    win = y[s > t - NOW]
    win = win[np.isfinite(win)]
    return float(np.median(win)) if win.size else float(y[-1])


def _slope(s: np.ndarray, y: np.ndarray, t: float, width: float) -> float:
    """Least-squares slope per 1,000 steps over (t - width, t], after SETTLE; NaN with under 3 rows."""
    m = (s > max(t - width, SETTLE)) & np.isfinite(y)
    if m.sum() < 3 or np.ptp(s[m]) == 0:
        return math.nan
    return float(np.polyfit(s[m] / 1000.0, y[m], 1)[0])


def _binned(s: np.ndarray, y: np.ndarray, t: float, start: float) -> np.ndarray:
    """Mean of y in BIN-step cells ending at t (oldest first); empty cells interpolated."""
    m = (s > start) & np.isfinite(y)
    n = int((t - start) // BIN)
    if n < 4 or m.sum() < 2:
        return np.empty(0)
    cell = ((t - s[m]) // BIN).astype(int)
    keep = cell < n
    sums = np.bincount(cell[keep], y[m][keep], minlength=n)
    counts = np.bincount(cell[keep], minlength=n)
    filled = counts > 0
    if filled.sum() < 2:
        return np.empty(0)
    mean = np.where(filled, sums / np.maximum(counts, 1), np.nan)
    idx = np.arange(n)
    mean = np.interp(idx, idx[filled], mean[filled])
    return mean[::-1]


def _detrend(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return y - np.polyval(np.polyfit(x, y, 1), x)


def train_loss_features(s: np.ndarray, log_train: np.ndarray, t: float) -> dict[str, float]:
    """The train-loss-only group: level, slope, and the oscillation signature of Notsawo et al.
    (energy of the low-frequency Fourier components of the detrended curve, spikes above trend)."""
    start = max(t - SPECTRAL, SETTLE)
    out = {
        "log_train": _now(s, log_train, t),
        "train_slope": _slope(s, log_train, t, SHORT),
        "train_low_energy": math.nan,
        "train_spikes": math.nan,
        "train_max_spike": math.nan,
    }
    cells = _binned(s, log_train, t, start)
    if cells.size:
        resid = _detrend(np.arange(cells.size, dtype=float), cells)
        power = np.abs(np.fft.rfft(resid)) ** 2 / cells.size**2
        k_low = max(1, int(cells.size * BIN / LOW_PERIOD))
        out["train_low_energy"] = float(np.log10(2 * power[1 : k_low + 1].sum() + 1e-8))
    m = (s > start) & np.isfinite(log_train)
    if m.sum() >= 4:
        resid = _detrend(s[m] / 1000.0, log_train[m])
        above = resid > SPIKE_DECADES
        onsets = int(above[0]) + int(np.sum(above[1:] & ~above[:-1]))
        out["train_spikes"] = onsets * 10_000 / max(t - start, BIN)  # per 10,000 steps
        out["train_max_spike"] = float(resid.max())
    return out


def features(steps: Sequence[int], metrics: Mapping[str, Sequence[float]], t: float) -> dict[str, float]:
    """FEATURES of one run from its rows with step <= t only (NaN where a window is too short).
    metrics: "train/loss", "test/loss", "test/acc", "weights/l2" arrays aligned with steps."""
    steps = np.asarray(steps, dtype=np.float64)
    rows = steps <= t
    if not rows.any():
        raise ValueError(f"no logged step <= t = {t:,.0f}")
    s = steps[rows]
    col = {
        k: np.asarray(metrics[k], dtype=np.float64)[: len(steps)][rows]
        for k in ("train/loss", "test/loss", "test/acc", "weights/l2")
    }
    log_test, log_l2 = _log(col["test/loss"]), _log(col["weights/l2"])
    now = _now(s, log_test, t)
    peak = int(np.nanargmax(log_test)) if np.isfinite(log_test).any() else len(s) - 1
    slope_long = _slope(s, log_test, t, LONG)
    out = {
        "log_test": now,
        "test_slope_short": _slope(s, log_test, t, SHORT),
        "test_slope_long": slope_long,
        # Generalisers fall slowly for tens of thousands of steps before the drop: the fall's rate on a
        # log scale is what the step predictor needs (stuck runs sit at the floor, 1e-3 decade/1k steps).
        "log_fall_rate": float(np.log10(max(-slope_long, 1e-3))) if np.isfinite(slope_long) else math.nan,
        "test_below_max": now - float(log_test[peak]),
        "test_acc": _now(s, col["test/acc"], t),
        "test_acc_slope": _slope(s, col["test/acc"], t, SHORT),
        "log_l2": _now(s, log_l2, t),
        "l2_slope": _slope(s, log_l2, t, SHORT),
    }
    out.update(train_loss_features(s, _log(col["train/loss"]), t))
    return out


def vector(feats: Mapping[str, float], names: Sequence[str]) -> np.ndarray:
    return np.array([feats.get(n, math.nan) for n in names], dtype=np.float64)


# ------------------------------------------------------------------------------------- models
def _standardiser(X: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """z-scores from the training rows; a NaN (window too short) becomes the mean; clipped at 5 sd so
    one extreme slope cannot dominate a distance or a logit."""
    with warnings.catch_warnings():  # an all-NaN column is expected early on: it becomes 0
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(X, axis=0) if len(X) else np.zeros(X.shape[1])
        sd = np.nanstd(X, axis=0) if len(X) else np.ones(X.shape[1])
    mu = np.where(np.isfinite(mu), mu, 0.0)
    sd = np.where(np.isfinite(sd) & (sd > 1e-9), sd, 1.0)

    def z(A: np.ndarray) -> np.ndarray:
        Z = (np.atleast_2d(A) - mu) / sd
        return np.clip(np.where(np.isfinite(Z), Z, 0.0), -5, 5)

    return z


def _logistic(Z: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """L2-regularised logistic regression (intercept not penalised) by Newton steps."""
    A = np.hstack([np.ones((len(Z), 1)), Z])
    w = np.zeros(A.shape[1])
    reg = lam * np.eye(A.shape[1])
    reg[0, 0] = 1e-6
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(A @ w, -30, 30)))
        grad = A.T @ (p - y) + reg @ w
        step = np.linalg.solve(A.T @ (A * (p * (1 - p))[:, None]) + reg, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _nearest(Z: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    d = ((Z - q) ** 2).sum(axis=1)
    return np.argsort(d, kind="stable")[: min(k, len(Z))]


def fit_classifier(X: np.ndarray, y: np.ndarray, kind: str, param: float) -> Callable[[np.ndarray], float]:
    """P(generalises) for one feature vector, from training rows X and labels y (1 = generalises)."""
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return lambda x: 0.5
    if y.min() == y.max():  # one class only: that class, softened by one pseudo-count each side
        p = (y.sum() + 1) / (len(y) + 2)
        return lambda x: float(p)
    z = _standardiser(X)
    Z = z(X)
    if kind == "logistic":
        w = _logistic(Z, y, param)
        return lambda x: float(1 / (1 + np.exp(-np.clip(w[0] + z(x)[0] @ w[1:], -30, 30))))
    k = int(param)
    return lambda x: float(y[_nearest(Z, z(x)[0], k)].mean())


def fit_regressor(
    X: np.ndarray, target: np.ndarray, kind: str, param: float
) -> Callable[[np.ndarray], float]:
    """log10(steps still to go) for one feature vector."""
    target = np.asarray(target, dtype=float)
    if len(target) < 3:  # too few to fit anything: the median of what there is
        med = float(np.median(target)) if len(target) else math.nan
        return lambda x: med
    z = _standardiser(X)
    Z = z(X)
    if kind == "ridge":
        A = np.hstack([np.ones((len(Z), 1)), Z])
        reg = param * np.eye(A.shape[1])
        reg[0, 0] = 0.0
        w = np.linalg.solve(A.T @ A + reg, A.T @ target)
        return lambda x: float(w[0] + z(x)[0] @ w[1:])
    k = int(param)
    return lambda x: float(np.median(target[_nearest(Z, z(x)[0], k)]))


def _folds(groups: Sequence) -> list[np.ndarray]:
    groups = np.asarray([str(g) for g in groups])
    return [groups == g for g in dict.fromkeys(groups)]


def choose_classifier(X: np.ndarray, y: np.ndarray, groups: Sequence) -> tuple[str, float]:
    """The candidate with the best leave-one-group-out accuracy on (X, y) (ties: the earlier)."""
    folds = _folds(groups)
    if len(folds) < 3 or np.min(y) == np.max(y):
        return CLASSIFIERS[0]
    best, best_acc = CLASSIFIERS[0], -1.0
    for kind, param in CLASSIFIERS:
        right = 0
        for out in folds:
            f = fit_classifier(X[~out], y[~out], kind, param)
            right += sum((f(x) >= 0.5) == bool(label) for x, label in zip(X[out], y[out]))
        if right / len(y) > best_acc:
            best, best_acc = (kind, param), right / len(y)
    return best


def choose_regressor(X: np.ndarray, remaining: np.ndarray, t: float, groups: Sequence) -> tuple[str, float]:
    """The candidate with the smallest leave-one-group-out median relative error of the step."""
    folds = _folds(groups)
    if len(folds) < 4:
        return REGRESSORS[0]
    target, actual = np.log10(remaining), t + remaining
    best, best_err = REGRESSORS[0], math.inf
    for kind, param in REGRESSORS:
        errs = []
        for out in folds:
            f = fit_regressor(X[~out], target[~out], kind, param)
            errs += [abs(t + 10 ** f(x) - a) / a for x, a in zip(X[out], actual[out])]
        if np.median(errs) < best_err:
            best, best_err = (kind, param), float(np.median(errs))
    return best


def fit(
    X: np.ndarray, solved: Sequence[Optional[int]], t: float, cap: float, groups: Optional[Sequence] = None
):
    """Both models from training rows (features at t, solved step or None), all not yet generalised
    at t. Returns (predict(x) -> (p, step), (classifier, regressor) chosen)."""
    groups = list(range(len(X))) if groups is None else list(groups)
    solved = [None if s is None or s > cap else int(s) for s in solved]
    y = np.array([s is not None for s in solved], dtype=float)
    cls = choose_classifier(X, y, groups)
    classify = fit_classifier(X, y, *cls)
    gen = np.array([s is not None for s in solved])
    remaining = np.array([s - t for s in solved if s is not None], dtype=float)
    Xg, gg = X[gen], [g for g, keep in zip(groups, gen) if keep]
    reg = choose_regressor(Xg, remaining, t, gg)
    regress = fit_regressor(Xg, np.log10(remaining), *reg)

    def predict(x: np.ndarray) -> tuple[float, Optional[int]]:
        log_rest = regress(x)
        step = None if not np.isfinite(log_rest) else int(round(t + 10**log_rest))
        return classify(x), step

    return predict, (cls, reg)


# ------------------------------------------------------------------------------------- forecast
def forecast(
    steps: Sequence[int],
    metrics: Mapping[str, Sequence[float]],
    t: float,
    reference: Mapping,
    feature_set: str = "all",
    fitted: Optional[dict] = None,
) -> dict:
    """Will this run generalise within the reference's cap, and when? reference: load_reference's
    answer. Each reference model contributes its features at the nearest grid t' <= t, if it had not
    generalised by t'. The fit depends on t' only: pass a dict as `fitted` to keep it between calls
    (a run forecasting at every logged step), else it refits (well under a second)."""
    cap = int(reference["cap"])
    steps = np.asarray(steps)
    upto = steps <= t
    done = outcome.first_solved_step(
        steps[upto], np.asarray(metrics["test/loss"])[upto], np.asarray(metrics["test/acc"])[upto]
    )
    base = {"t": int(t), "cap": cap, "probability": None, "class": None, "predicted_step": None}
    if done is not None:
        return {**base, "probability": 1.0, "class": "generalised", "predicted_step": done}
    grid = [g for g in reference["grid"] if g <= t]
    if not grid:
        return {**base, "class": "too early", "reference_t": None}
    g = len(grid) - 1
    names = list(reference["features"])
    cols = [names.index(n) for n in FEATURE_SETS[feature_set]]
    rows = [
        m
        for m in reference["models"]
        if m["x"][g] is not None and (m["solved_step"] is None or m["solved_step"] > grid[g])
    ]
    key = (g, feature_set)
    if fitted is None or key not in fitted:
        X = np.array([[math.nan if v is None else v for v in m["x"][g]] for m in rows], dtype=float)[:, cols]
        result = fit(
            X, [m["solved_step"] for m in rows], grid[g], cap, [m.get("seed", i) for i, m in enumerate(rows)]
        )
        if fitted is None:
            fitted = {}
        fitted[key] = result
    predict, chosen = fitted[key]
    p, step = predict(vector(features(steps, metrics, t), FEATURE_SETS[feature_set]))
    if step is not None:  # the reference counted steps from t'; this run is already at t
        step += int(t - grid[g])
    will = p >= 0.5
    return {
        **base,
        "probability": round(p, 3),
        "class": "will generalise" if will else "will not",
        "predicted_step": step if will else None,
        "reference_t": grid[g],
        "n_reference": len(rows),
        "method": chosen,
    }


def _round2(n: int) -> int:
    return int(round(n, -max(0, len(str(int(n))) - 2)))


def forecast_line(pred: Mapping) -> str:
    """One short console phrase, e.g. "forecast: generalises ~32,000 (p=0.83)"."""
    cls = pred.get("class")
    if cls == "generalised":
        return f"forecast: generalised at {pred['predicted_step']:,}"
    if cls in (None, "too early"):
        return "forecast: too early (no reference before this step)"
    if cls == "will generalise" and pred.get("predicted_step") is not None:
        return f"forecast: generalises ~{_round2(pred['predicted_step']):,} (p={pred['probability']:.2f})"
    return f"forecast: no generalisation by {pred['cap']:,} (p={pred['probability']:.2f})"


# ------------------------------------------------------------------------------------- evaluation
def auc(p_pos: Sequence[float], p_neg: Sequence[float]) -> float:
    """P(a generaliser gets a higher p than a non-generaliser), ties half: on a few dozen models the
    ranking says more than one threshold's accuracy."""
    if not p_pos or not p_neg:
        return math.nan
    a, b = np.asarray(p_pos)[:, None], np.asarray(p_neg)[None, :]
    return float(((a > b) + 0.5 * (a == b)).mean())


def evaluate(
    histories_by_model: Mapping[str, Mapping],
    solved_by_model: Mapping[str, Optional[int]],
    t: float,
    cap: float = DEFAULT_CAP,
    feature_set: str = "all",
    groups: Optional[Mapping[str, object]] = None,
) -> dict:
    """Leave-one-group-out (group = seed; default: each model alone) at step t. Models that had
    generalised by t are trivially right and counted apart; the rest are "open". The step error is
    |predicted - actual| / actual over open models that did generalise within the cap, whatever the
    classifier said (the forecast shows a step only when it says "will generalise")."""
    names = FEATURE_SETS[feature_set]
    ids = sorted(histories_by_model)
    solved = {
        m: (None if solved_by_model.get(m) is None or solved_by_model[m] > cap else int(solved_by_model[m]))
        for m in ids
    }
    already = [m for m in ids if solved[m] is not None and solved[m] <= t]
    open_ids = [m for m in ids if m not in already]
    group = {m: str(groups[m]) if groups else m for m in ids}
    X = np.array(
        [vector(features(histories_by_model[m]["steps"], histories_by_model[m], t), names) for m in open_ids]
    )
    per_model = {m: {"solved_step": solved[m], "already": True, "right": True} for m in already}
    chosen: Counter = Counter()
    for g in dict.fromkeys(group[m] for m in open_ids):
        out = np.array([group[m] == g for m in open_ids])
        train_ids = [m for m, o in zip(open_ids, out) if not o]
        predict, pick = fit(X[~out], [solved[m] for m in train_ids], t, cap, [group[m] for m in train_ids])
        chosen[pick] += 1
        for i in np.flatnonzero(out):
            m = open_ids[i]
            p, step = predict(X[i])
            truth = solved[m] is not None
            err = abs(step - solved[m]) / solved[m] if truth and step is not None else None
            per_model[m] = {
                "solved_step": solved[m],
                "already": False,
                "p": round(p, 3),
                "class": "will generalise" if p >= 0.5 else "will not",
                "right": (p >= 0.5) == truth,
                "predicted_step": step,
                "rel_error": None if err is None else round(err, 3),
            }
    n_open = len(open_ids)
    right_open = sum(per_model[m]["right"] for m in open_ids)
    errs = [per_model[m]["rel_error"] for m in open_ids if per_model[m].get("rel_error") is not None]
    positives = sum(solved[m] is not None for m in open_ids)
    p_pos = [per_model[m]["p"] for m in open_ids if solved[m] is not None]
    p_neg = [per_model[m]["p"] for m in open_ids if solved[m] is None]
    return {
        "t": int(t),
        "cap": int(cap),
        "feature_set": feature_set,
        "n": len(ids),
        "n_already": len(already),
        "n_open": n_open,
        "accuracy": (right_open + len(already)) / len(ids) if ids else math.nan,
        "accuracy_open": right_open / n_open if n_open else math.nan,
        "majority_open": max(positives, n_open - positives) / n_open if n_open else math.nan,
        "auc_open": auc(p_pos, p_neg),
        "median_rel_error": float(np.median(errs)) if errs else math.nan,
        "n_step": len(errs),
        "methods": {f"{c[0]}({c[1]:g}) / {r[0]}({r[1]:g})": k for (c, r), k in chosen.most_common()},
        "per_model": per_model,
    }


# ------------------------------------------------------------------------------------- sweeps, reference
class ForecastError(Exception):
    pass


def _get(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        try:
            node = node[part]
        except Exception:  # missing key in a dict or a DictConfig, or not a mapping
            return None
    return node


def settings_of(cfg_like) -> dict:
    """The SETTINGS of a run config (nested, e.g. sweep.yaml's first_model_config or a DictConfig)
    or of a flat dict that already has them; precision and init as strings, the rest as numbers."""
    out = {}
    for key, dotted in SETTINGS.items():
        v = _get(cfg_like, dotted)
        v = _get(cfg_like, key) if v is None else v
        out[key] = None if v is None else (str(v) if key in ("precision", "init") else float(v))
    return out


def _same(a: dict, b: dict) -> bool:
    for k in SETTINGS:
        x, y = a.get(k), b.get(k)
        if isinstance(x, float) and isinstance(y, float):
            if not math.isclose(x, y, rel_tol=1e-9):
                return False
        elif x != y:
            return False
    return True


def load_sweep(sweep_dir: Path) -> dict:
    """histories, solved steps (from the histories, as outcome.first_solved_step), seeds (from
    results.csv or, while the sweep runs, batches/*.json), settings and max_steps of one seed sweep."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ForecastError(f"no such sweep directory: {sweep_dir}")
    spec_path = sweep_dir / "sweep.yaml"
    if not spec_path.is_file():
        raise ForecastError(f"{sweep_dir} has no sweep.yaml")
    import yaml

    from grok_lightning import histories  # imports torch: only the CLI pays for it, after the checks

    spec = yaml.safe_load(spec_path.read_text())
    if spec.get("grid"):
        raise ForecastError(f"{sweep_dir} sweeps a grid: a reference needs one setting (a seed sweep)")
    cfg = spec.get("first_model_config") or {}
    hist = histories.load(sweep_dir)
    if not hist:
        raise ForecastError(f"{sweep_dir} has no histories/*.npz yet")
    seeds = {}
    for path in sorted((sweep_dir / "batches").glob("*.json")):
        for row in json.loads(path.read_text())["rows"]:
            seeds.setdefault(row["model_id"], int(row["seed"]))
    hist = {m: h for m, h in hist.items() if m in seeds}
    solved = {
        m: outcome.first_solved_step(h["steps"], h["test/loss"], h["test/acc"]) for m, h in hist.items()
    }
    steps = next(iter(hist.values()))["steps"]
    return {
        "name": sweep_dir.name,
        "histories": hist,
        "solved": solved,
        "seeds": seeds,
        "settings": settings_of(cfg),
        "max_steps": int(_get(cfg, "train.max_steps") or steps[-1] + 1),
        "log_every": int(np.median(np.diff(steps))) if len(steps) > 1 else None,
    }


def _r(v: float) -> Optional[float]:
    return float(f"{v:.4g}") if np.isfinite(v) else None


def build_reference(sweeps: Sequence[dict], grid: Sequence[int] = GRID) -> dict:
    """The reference file's content: per sweep its settings and, per model, the feature vectors at
    each grid t (null past the last logged step) and its solved step."""
    sets = []
    for sw in sweeps:
        models = []
        for m, h in sorted(sw["histories"].items(), key=lambda kv: sw["seeds"][kv[0]]):
            last = h["steps"][-1]
            x = [
                [_r(v) for v in vector(features(h["steps"], h, g), FEATURES)] if g <= last else None
                for g in grid
            ]
            models.append({"id": m, "seed": sw["seeds"][m], "solved_step": sw["solved"][m], "x": x})
        sets.append(
            {
                "sweep": sw["name"],
                "settings": sw["settings"],
                "max_steps": sw["max_steps"],
                "log_every": sw["log_every"],
                "models": models,
            }
        )
    return {
        "about": "grok_lightning.forecast reference: feature vectors (order: features) at each grid t",
        "features": list(FEATURES),
        "train_loss_only": list(TRAIN_ONLY),
        "grid": list(grid),
        "sets": sets,
    }


def load_reference(cfg_like, path: Path = REFERENCE_PATH) -> Optional[dict]:
    """The reference models of this run's setting (pooled over matching sweeps): {"grid", "features",
    "cap", "models", "sweeps"}; None when the file or a matching setting is missing."""
    path = Path(path)
    if not path.is_file():
        return None
    ref = json.loads(path.read_text())
    want = settings_of(cfg_like)
    sets = [s for s in ref["sets"] if _same(s["settings"], want)]
    if not sets:
        return None
    return {
        "grid": ref["grid"],
        "features": ref["features"],
        "cap": min(s["max_steps"] for s in sets),
        "models": [m for s in sets for m in s["models"]],
        "sweeps": [s["sweep"] for s in sets],
    }


# ------------------------------------------------------------------------------------- CLI
TABLE = (  # (header, width, cell)
    ("sweep", -24, lambda n, r: n[:24]),
    ("t", 7, lambda n, r: f"{r['t']:,}"),
    ("features", -8, lambda n, r: r["feature_set"]),
    ("n", 3, lambda n, r: r["n"]),
    ("done", 4, lambda n, r: r["n_already"]),
    ("open", 4, lambda n, r: r["n_open"]),
    ("acc", 5, lambda n, r: f"{r['accuracy']:.2f}"),
    ("acc_open", 8, lambda n, r: f"{r['accuracy_open']:.2f}"),
    ("base", 5, lambda n, r: f"{r['majority_open']:.2f}"),
    ("auc", 5, lambda n, r: f"{r['auc_open']:.2f}"),
    ("step err (n)", 12, lambda n, r: f"{r['median_rel_error']:.2f} ({r['n_step']})" if r["n_step"] else "-"),
    ("chosen in most folds (classifier / step)", -1, lambda n, r: _most(r["methods"])),
)


def _most(methods: Mapping[str, int]) -> str:
    if not methods:
        return "-"
    best = max(methods, key=methods.get)
    return f"{best}, {methods[best]}/{sum(methods.values())}"


def _table(results: Sequence[tuple[str, dict]]) -> str:
    def line(cells) -> str:
        return " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, (_, w, _) in zip(cells, TABLE)).rstrip()

    head = line([h for h, _, _ in TABLE])
    return "\n".join(
        [head, "-" * len(head)] + [line([str(f(n, r)) for _, _, f in TABLE]) for n, r in results]
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m grok_lightning.forecast", description=__doc__.split("\n\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    ev = sub.add_parser("evaluate", help="leave-one-seed-out accuracy and step error")
    ev.add_argument("sweeps", nargs="+")
    ev.add_argument("--t", default=",".join(str(t) for t in DEFAULT_T), help="comma-separated steps")
    ev.add_argument("--cap", type=int, default=DEFAULT_CAP)
    ev.add_argument("--json", help="also write every result, per-model predictions included, here")
    br = sub.add_parser("build-reference", help="store feature vectors of these sweeps")
    br.add_argument("sweeps", nargs="+")
    br.add_argument("--out", default=str(REFERENCE_PATH))
    args = ap.parse_args(argv)
    try:
        sweeps = [load_sweep(Path(d)) for d in args.sweeps]
        if args.cmd == "build-reference":
            ref = build_reference(sweeps)
            Path(args.out).write_text(json.dumps(ref, separators=(",", ":")) + "\n")
            n = sum(len(s["models"]) for s in ref["sets"])
            print(
                f"forecast reference: {n} models from {len(sweeps)} sweep(s) "
                f"at {len(ref['grid'])} steps -> {args.out}"
            )
            return 0
        ts = [int(float(t)) for t in args.t.split(",") if t]
    except (ForecastError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    regimes = [(sw["name"], [sw]) for sw in sweeps]
    if len(sweeps) > 1:
        regimes.append(("pooled", sweeps))
    results = []
    for name, group in regimes:
        hist, solved, seeds = {}, {}, {}
        cap = min([args.cap] + [sw["max_steps"] for sw in group])  # beyond a sweep's end, labels are unknown
        for sw in group:
            for m, h in sw["histories"].items():
                hist[m], solved[m], seeds[m] = h, sw["solved"][m], sw["seeds"][m]
        for t in ts:
            for fs in FEATURE_SETS:
                results.append((name, evaluate(hist, solved, t, cap, fs, groups=seeds)))
    print(_table(results))
    print(
        "acc: share right, generalised-by-t counted right; acc_open: of the rest; "
        "base: majority class of the rest; auc: ranking of the rest by p; "
        "step err: median |pred - actual| / actual over open models that generalised"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps([{"sweep": n, **r} for n, r in results], indent=1, default=str) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

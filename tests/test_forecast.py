"""The early warning (grok_lightning.forecast) on hand-made histories: generalisers whose log test loss
falls linearly from its peak and then drops at a known step, stuck runs whose test loss stays flat or
rises. Every curve is a smooth function of the step, so logging it every 100 or every 300 steps
samples the same curve."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from grok_lightning import forecast as F

PEAK = 2_000  # the test loss peaks here after memorising, as in the real runs
CAP = 150_000


def curve(solve=None, rise=0.0, seed=0, every=300, last=CAP, spikes=None):
    """One run's history. solve: the step where the test loss drops (None: stuck, its log test loss
    moving by `rise` decades per 100,000 steps). spikes: train-loss spikes every this many steps
    (default: generalisers have them, stuck runs do not: the train-loss-only signature)."""
    s = np.arange(0, last, every, dtype=float)
    ph = 0.7 * seed
    lt = np.where(s < PEAK, -1.2 + 1.3 * s / PEAK, 0.1)
    if solve is not None:
        rate = 0.6 / (solve - PEAK)  # from 0.1 at the peak to -0.5 at `solve`, then the drop
        lt = np.where(s >= PEAK, 0.1 - rate * (s - PEAK), lt)
        lt = np.where(s >= solve, -0.5 - 3.5 * np.clip((s - solve) / 1_000, 0, 1), lt)
        l2 = 1.5 - 0.3 * np.clip((s - PEAK) / (solve - PEAK), 0, 1.5)
    else:
        lt = np.where(s >= PEAK, 0.1 + rise * (s - PEAK) / 1e5, lt)
        l2 = np.full_like(s, 1.5)
    lt = lt + 0.01 * np.sin(s / 1_700 + ph)
    acc = np.where(lt < -2, 1.0, np.clip(0.02 + 0.5 * (0.1 - lt), 0, 0.6))
    ltr = np.where(s < 500, -1.2 - 4.8 * s / 500, -6.0) + 0.05 * np.sin(s / 900 + ph)
    period = spikes if spikes is not None else (4_000 + 300 * (seed % 3) if solve is not None else None)
    if period:
        ltr = ltr + 1.5 * np.maximum(0, np.sin(2 * np.pi * s / period + ph)) ** 8 * (s > 1_000)
    return {
        "steps": s.astype(np.int64),
        "train/loss": 10**ltr,
        "test/loss": 10**lt,
        "test/acc": acc,
        "train/acc": np.ones_like(s),
        "weights/l2": 10**l2,
    }


def population(every=300, n=12):
    """n generalisers (drops between 26,000 and 70,000) and n stuck runs (flat or rising)."""
    hist, solved = {}, {}
    for i in range(n):
        h = curve(solve=26_000 + 4_000 * i, seed=i, every=every)
        hist[f"g{i}"], solved[f"g{i}"] = (
            h,
            F.outcome.first_solved_step(h["steps"], h["test/loss"], h["test/acc"]),
        )
        h = curve(rise=0.3 * (i % 4) / 3, seed=i, every=every)
        hist[f"s{i}"], solved[f"s{i}"] = h, None
    return hist, solved


def test_synthetic_generalisers_solve_where_made():
    h = curve(solve=40_000)
    solved = F.outcome.first_solved_step(h["steps"], h["test/loss"], h["test/acc"])
    assert 40_000 < solved <= 41_000


def test_features_never_read_rows_after_t():
    h = curve(solve=40_000)
    t = 20_000
    before = F.features(h["steps"], h, t)
    later = h["steps"] > t
    rng = np.random.default_rng(0)
    changed = {
        k: np.where(later, rng.uniform(1e-9, 10, len(v)), v) if k != "steps" else v for k, v in h.items()
    }
    after = F.features(changed["steps"], changed, t)
    assert set(before) == set(F.FEATURES)
    for name in F.FEATURES:
        assert before[name] == after[name] or (math.isnan(before[name]) and math.isnan(after[name])), name
    # ... and they do depend on the rows up to t
    assert F.features(h["steps"], h, 30_000)["log_test"] != before["log_test"]


def test_features_robust_to_log_cadence():
    for kind in ({"solve": 40_000, "seed": 1}, {"rise": 0.2, "seed": 2}):
        a = F.features(*_split(curve(every=100, **kind)), 20_000)
        b = F.features(*_split(curve(every=300, **kind)), 20_000)
        for name in F.FEATURES:
            assert np.isfinite(a[name]) and np.isfinite(b[name]), name
            tol = 0.35 if name == "train_low_energy" else 0.05 + 0.05 * abs(a[name])
            assert abs(a[name] - b[name]) <= tol, (name, a[name], b[name])


def _split(h):
    return h["steps"], h


def test_features_tell_generalisers_from_stuck_runs():
    g = F.features(*_split(curve(solve=40_000)), 20_000)
    s = F.features(*_split(curve(rise=0.2)), 20_000)
    assert g["test_slope_long"] < 0 < s["test_slope_long"]
    assert g["test_below_max"] < -0.2 and s["test_below_max"] > -0.05
    assert g["train_spikes"] >= 1 and s["train_spikes"] == 0
    assert g["train_low_energy"] > s["train_low_energy"] + 1


@pytest.mark.parametrize("feature_set", ["all", "train"])
def test_classifier_separates_leave_one_out(feature_set):
    hist, solved = population()
    r = F.evaluate(hist, solved, 20_000, CAP, feature_set)
    assert r["n"] == 24 and r["n_already"] == 0 and r["n_open"] == 24
    assert r["accuracy_open"] >= 0.9, r["per_model"]
    assert r["majority_open"] == 0.5  # so the accuracy is not the base rate
    assert r["auc_open"] >= 0.9


def test_auc_counts_ties_half():
    assert F.auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert F.auc([0.1], [0.9]) == 0.0
    assert F.auc([0.5, 0.9], [0.5]) == 0.75
    assert math.isnan(F.auc([], [0.3]))


def test_step_predictor_close_on_clean_curves():
    hist, solved = population()
    r = F.evaluate(hist, solved, 20_000, CAP, "all")
    assert r["n_step"] == 12
    assert r["median_rel_error"] <= 0.1, {m: p.get("rel_error") for m, p in r["per_model"].items()}


def test_already_generalised_models_are_counted_apart():
    hist, solved = population(n=8)
    h = curve(solve=6_000, seed=3)
    hist["early"], solved["early"] = h, F.outcome.first_solved_step(h["steps"], h["test/loss"], h["test/acc"])
    r = F.evaluate(hist, solved, 10_000, CAP, "all")
    assert r["n_already"] == 1 and r["per_model"]["early"]["already"] and "p" not in r["per_model"]["early"]
    assert r["n_open"] == 16
    assert r["accuracy"] == pytest.approx((r["accuracy_open"] * 16 + 1) / 17)


def test_cap_turns_late_generalisers_into_negatives():
    hist, solved = population(n=8)
    r = F.evaluate(hist, solved, 20_000, cap=40_000)
    late = [m for m, s in solved.items() if s is not None and s > 40_000]
    assert late and all(r["per_model"][m]["solved_step"] is None for m in late)


def test_leave_one_seed_out_holds_out_the_whole_group():
    """Two copies of each run: with the copy in the training set a 1-NN is always right, so the
    group must take both out together (the result then differs from per-model leave-one-out)."""
    hist, solved = population(n=6)
    hist.update({m + "b": h for m, h in hist.items()})
    solved.update({m + "b": s for m, s in solved.items()})
    groups = {m: m.rstrip("b") for m in hist}
    per_group = F.evaluate(hist, solved, 20_000, CAP, "all", groups=groups)
    per_model = F.evaluate(hist, solved, 20_000, CAP, "all")
    assert per_model["median_rel_error"] < 0.01  # its twin gives the answer away
    assert per_group["median_rel_error"] > 3 * per_model["median_rel_error"]


def _sweep(name, hist, solved, precision="32"):
    return {
        "name": name,
        "histories": hist,
        "solved": solved,
        "seeds": {m: i for i, m in enumerate(sorted(hist))},
        "settings": F.settings_of(
            {
                "p": 67,
                "d_embed": 500,
                "n_neurons": 24,
                "train_fraction": 0.4,
                "lr": 1e-3,
                "weight_decay": 1.0,
                "precision": precision,
                "init": "torch",
            }
        ),
        "max_steps": CAP,
        "log_every": 300,
    }


def test_reference_roundtrip_and_forecast(tmp_path):
    hist, solved = population()
    ref = F.build_reference([_sweep("synthetic", hist, solved)])
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(ref))
    cfg = {
        "data": {"p": 67, "train_fraction": 0.4},
        "model": {"d_embed": 500, "n_neurons": 24, "init": "torch"},
        "optim": {"lr": 0.001, "weight_decay": 1.0},
        "train": {"precision": "32"},
    }
    loaded = F.load_reference(cfg, path)
    assert loaded["cap"] == CAP and len(loaded["models"]) == 24 and loaded["grid"][0] == 2_500
    assert F.load_reference({**cfg, "train": {"precision": "original"}}, path) is None
    assert F.load_reference(cfg, tmp_path / "missing.json") is None

    # A run logged every 100 steps, at a t between grid points (uses the grid's 20,000).
    run = curve(solve=45_000, seed=5, every=100)
    pred = F.forecast(run["steps"], run, 21_000, loaded)
    assert pred["class"] == "will generalise" and pred["reference_t"] == 20_000
    assert abs(pred["predicted_step"] - 45_000) / 45_000 < 0.15
    assert F.forecast_line(pred).startswith("forecast: generalises ~") and "(p=" in F.forecast_line(pred)
    stuck = curve(rise=0.1, seed=5, every=100)
    pred = F.forecast(stuck["steps"], stuck, 21_000, loaded)
    assert pred["class"] == "will not" and pred["predicted_step"] is None
    assert F.forecast_line(pred) == f"forecast: no generalisation by 150,000 (p={pred['probability']:.2f})"
    assert F.forecast(run["steps"], run, 2_000, loaded)["class"] == "too early"
    done = F.forecast(run["steps"], run, 60_000, loaded)
    assert done["class"] == "generalised" and F.forecast_line(done).startswith("forecast: generalised at 45,")


def test_logistic_newton_fits_a_separable_direction():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    y = (X[:, 1] > 0).astype(float)
    f = F.fit_classifier(X, y, "logistic", 1.0)
    assert f(np.array([0, 2.0, 0])) > 0.9 and f(np.array([0, -2.0, 0])) < 0.1
    assert F.fit_classifier(X, np.ones(40), "logistic", 1.0)(X[0]) == pytest.approx(41 / 42)


def test_cli_missing_dir_exits_2_with_one_line(tmp_path):
    for cmd in (["evaluate"], ["build-reference", "--out", str(tmp_path / "r.json")]):
        proc = subprocess.run(
            [sys.executable, "-m", "grok_lightning.forecast", *cmd, str(tmp_path / "nope")],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2
        assert proc.stderr.strip().count("\n") == 0 and "no such sweep directory" in proc.stderr
        assert not (tmp_path / "r.json").exists()


def test_cli_on_a_sweep_directory(tmp_path, capsys):
    """The CLI reads histories/*.npz and batches/*.json as a running sweep leaves them (no results.csv)."""
    import torch

    from grok_lightning import histories
    from grok_lightning.module import METRICS

    hist, solved = population(n=6)
    ids = sorted(hist)
    steps = hist[ids[0]]["steps"]
    values = np.stack(
        [np.stack([hist[m].get(k, np.zeros(len(steps))) for k in METRICS], axis=1) for m in ids], 1
    )
    histories.save_batch(tmp_path / "histories" / "b0.npz", ids, steps, torch.tensor(values), METRICS)
    rows = [{"model_id": m, "seed": i, "solved_step": solved[m]} for i, m in enumerate(ids)]
    (tmp_path / "batches").mkdir()
    (tmp_path / "batches" / "b0.json").write_text(json.dumps({"rows": rows}))
    (tmp_path / "sweep.yaml").write_text(
        "grid: {}\nfirst_model_config:\n  data: {p: 67, train_fraction: 0.4}\n"
        "  model: {d_embed: 500, n_neurons: 24, init: torch}\n  optim: {lr: 0.001, weight_decay: 1.0}\n"
        "  train: {precision: '32', max_steps: 150000}\n"
    )
    assert F.main(["evaluate", str(tmp_path), "--t", "20000"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"{tmp_path.name[:24]}  20,000 ") == 2 and " all " in out and " train " in out
    ref = tmp_path / "ref.json"
    assert F.main(["build-reference", str(tmp_path), "--out", str(ref)]) == 0
    data = json.loads(ref.read_text())
    assert data["sets"][0]["settings"]["precision"] == "32" and data["sets"][0]["log_every"] == 300
    assert [m["solved_step"] for m in data["sets"][0]["models"]] == [solved[m] for m in ids]
    assert set(data["train_loss_only"]) < set(data["features"])


def test_early_warning_during_training_keeps_its_fits_and_reports(tmp_path):
    """The training callback: a forecast line at its cadence and at 10,000 / 20,000, one fit per
    reference grid step (kept between calls), the same answer as a fresh forecast."""
    from types import SimpleNamespace

    import torch

    from grok_lightning.early_warning import EarlyWarning
    from grok_lightning.module import METRICS

    hist, solved = population()
    ref = F.build_reference([_sweep("synthetic", hist, solved)])
    loaded = {
        "grid": ref["grid"],
        "features": ref["features"],
        "cap": CAP,
        "models": ref["sets"][0]["models"],
        "sweeps": ["synthetic"],
    }
    run = curve(solve=45_000, seed=5, every=100, last=20_001)
    values = torch.tensor(np.stack([run.get(m, np.zeros(len(run["steps"]))) for m in METRICS], 1))[:, None, :]
    module = SimpleNamespace(history_tensor=lambda: (run["steps"].tolist(), values), latest_forecast=None)
    warning = EarlyWarning(loaded, every=5_000)
    for step in (2_000, 5_000, 7_000, 10_000, 15_000, 20_000):
        warning.on_train_batch_end(SimpleNamespace(global_step=step), module)
    assert [s for s, _ in warning.made] == [5_000, 10_000, 15_000, 20_000]
    assert set(warning.fitted) == {(1, "all"), (3, "all"), (5, "all"), (7, "all")}
    assert module.latest_forecast.startswith("forecast: generalises ~")
    part = warning.summary_part()
    assert set(part["forecasts"]) == {"10000", "20000"} and part["forecast_last"]["step"] == 20_000
    fresh = F.forecast(run["steps"], run, 20_000, loaded)
    assert part["forecast_last"]["probability"] == fresh["probability"]

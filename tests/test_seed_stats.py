"""Seed statistics: counts by the nominal budget and the cap, the median's bootstrap interval, and
the fate called at the nominal budget checked against how each model ended."""

import numpy as np

from grok_lightning import seed_stats
from grok_lightning.fate import Budget

STEPS = np.arange(0, 150_000, 500)


def history(test_loss, test_acc):
    n = len(STEPS)
    return {
        "steps": STEPS,
        "train/acc": np.ones(n),
        "test/acc": np.asarray(test_acc, float),
        "test/loss": np.asarray(test_loss, float),
    }


def grokker(at):  # test loss falls steadily (log-linear) until it generalises at `at`
    loss = np.where(STEPS < at, 0.5 * 10 ** (-np.log10(50) * STEPS / at), 1e-5)
    return history(loss, np.where(STEPS >= at, 1.0, 0.05))


def stuck():
    return history(np.minimum(0.07 * 10 ** (0.02 * STEPS / 1000), 1.5), np.full(len(STEPS), 0.02))


def test_median_interval_is_reproducible_and_brackets_the_median():
    steps = [10_000, 20_000, 25_000, 30_000, 42_000, 80_000]
    lo, hi = seed_stats.median_interval(steps)
    assert (lo, hi) == seed_stats.median_interval(steps)
    assert lo <= np.median(steps) <= hi and lo >= 10_000 and hi <= 80_000
    assert seed_stats.median_interval([5]) is None


def test_fate_at_the_nominal_budget_against_the_end():
    budget = Budget(nominal=50_000, cap=150_000, margin=5_000, window=10_000)
    hist = {"early": grokker(30_000), "late": grokker(90_000), "stuck": stuck()}
    a = seed_stats.fate_agreement(hist, budget)
    models = a["models"]
    assert models["early"]["fate_at_nominal"] == "generalised"
    assert models["late"]["fate_at_nominal"] == "not yet" and models["late"]["solved_step"] == 90_000
    assert models["stuck"]["fate_at_nominal"] == "stuck" and models["stuck"]["solved_step"] is None
    assert (a["judged"], a["agree"], a["agreement"]) == (2, 2, 1.0)
    # a stuck call on a model that generalised later counts as wrong
    hist["late"] = history(np.where(STEPS < 90_000, 1.3, 1e-5), np.where(STEPS >= 90_000, 1.0, 0.02))
    assert seed_stats.fate_agreement(hist, budget)["agree"] == 1


def test_counts_by_nominal_and_cap():
    rows = [
        {"model_id": "a", "seed": 0, "solved_step": "30000", "fate": "generalised", "key_frequencies": "4 9"},
        {"model_id": "b", "seed": 1, "solved_step": "90000", "fate": "generalised", "key_frequencies": "2"},
        {"model_id": "c", "seed": 2, "solved_step": "", "fate": "stuck", "key_frequencies": "1 5"},
    ]
    budget = Budget(nominal=50_000, cap=150_000, margin=5_000, window=10_000)
    s = seed_stats.seed_statistics(rows, {}, 150_000, budget)
    assert (s["solved_by_nominal"], s["solved_by_cap"], s["stuck"]) == (1, 2, 1)
    assert s["per_model"][2] == {"seed": 2, "solved_step": None, "fate": "stuck", "key_frequencies": "1 5"}

"""Pure rules over a run's logged metrics: when it memorised, when it generalised, and the
outcome class of SPEC section 5 (fail / memorise / generalise / grok)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

OUTCOMES = ("fail", "memorise", "generalise", "grok")


def first_step_at_or_above(steps: Sequence[int], values: Sequence[float], threshold: float) -> Optional[int]:
    """The first logged step whose value reaches threshold, or None."""
    for step, value in zip(steps, values):
        if value >= threshold:
            return int(step)
    return None


def outcome_class(
    train_loss: Sequence[float],
    test_loss: Sequence[float],
    loss_threshold: float = 1e-5,
    ratio_threshold: float = 5e4,
) -> str:
    """SPEC section 5, in order: fail, memorise, generalise, else grok. A NaN loss never counts as fitted."""
    train = np.asarray(train_loss, dtype=np.float64)
    test = np.asarray(test_loss, dtype=np.float64)
    if train.size == 0 or not np.nanmin(train, initial=np.inf) <= loss_threshold:
        return "fail"
    if not np.nanmin(test, initial=np.inf) <= loss_threshold:
        return "memorise"
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = test / train
    if np.nanmax(ratio, initial=0.0) < ratio_threshold:
        return "generalise"
    return "grok"


def max_ratio(train_loss: Sequence[float], test_loss: Sequence[float]) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(test_loss, dtype=np.float64) / np.asarray(train_loss, dtype=np.float64)
    return float(np.nanmax(ratio, initial=0.0))


def summarise(
    steps: Sequence[int],
    train_loss: Sequence[float],
    test_loss: Sequence[float],
    train_acc: Sequence[float],
    test_acc: Sequence[float],
    *,
    loss_threshold: float = 1e-5,
    ratio_threshold: float = 5e4,
    acc_threshold: float = 0.99,
) -> dict:
    """One model's summary: min losses, max test/train ratio, memorise/generalise steps, outcome."""
    return {
        "min_train_loss": float(np.nanmin(train_loss, initial=np.inf)),
        "min_test_loss": float(np.nanmin(test_loss, initial=np.inf)),
        "max_ratio": max_ratio(train_loss, test_loss),
        "memorise_step": first_step_at_or_above(steps, train_acc, acc_threshold),
        "generalise_step": first_step_at_or_above(steps, test_acc, acc_threshold),
        "outcome": outcome_class(train_loss, test_loss, loss_threshold, ratio_threshold),
    }

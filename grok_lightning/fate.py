"""A model's fate before it is sealed: the third verdict, and the adaptive budget built on it.

Where the accuracy verdict and the article's rule say "memorise" for every model that has not
generalised, the fate tells three cases apart (docs/experiments.md, "Fate and the adaptive budget"):

- "generalised": test accuracy >= 0.99 with test loss < 1e-2 (outcome.first_solved_step);
- "not yet": the training set is fitted and the test loss is falling: its log-linear trend over the
  last `window` steps would take it down at least MIN_FALL_DECADES by the cap;
- "stuck": fitted, and the test loss is flat or rising over that window (or falls less than that);
- "did not fit": train accuracy never reached 0.99.

The adaptive budget (train.step_cap): a run trains its nominal train.max_steps; a model that has
not generalised by then and is "not yet" trains on, up to the cap, and stops `margin` steps after
it generalises; a "stuck" model, or one that did not fit, stops. Every decision is a pure function
of the logged history up to that step, so a resumed run replays them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from grok_lightning.outcome import SOLVED_TEST_LOSS, first_solved_step, first_step_at_or_above

FATES = ("generalised", "not yet", "stuck", "did not fit")
MIN_POINTS = 5  # logged rows a trend needs
# "not yet" needs the test loss to fall at least this many decades (a factor 1.6) between now and
# the cap at its current log-linear rate; flatter is "stuck". Calibrated on float32 seeds 0-15 of the
# main setting (README, "Fate"): the stuck ones fell 0.02-0.14 decades per 100,000 steps at step
# 50,000, those that generalised later 0.38-9.4.
MIN_FALL_DECADES = 0.2


@dataclass(frozen=True)
class Fate:
    fate: str
    reason: str
    generalise_step: Optional[int] = None  # "generalised": the solved step
    eta_step: Optional[int] = None  # "not yet": where the test-loss trend reaches the threshold
    slope_per_1k: Optional[float] = None  # the test loss's trend: decades per 1,000 steps

    def as_dict(self) -> dict:
        return {
            "fate": self.fate,
            "fate_reason": self.reason,
            "fate_eta_step": self.eta_step,
            "test_loss_decades_per_1k": self.slope_per_1k,
        }


def log_trend(steps: Sequence[int], values: Sequence[float], window: int) -> Optional[tuple[float, float]]:
    """(slope per step of log10(value), fitted log10 at the last step) by least squares over the
    logged rows within `window` steps of the last one; None with fewer than MIN_POINTS finite rows."""
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    keep = (s > s[-1] - window) & np.isfinite(v) & (v > 0) if len(s) else np.zeros(0, bool)
    if keep.sum() < MIN_POINTS:
        return None
    x, y = s[keep], np.log10(v[keep])
    slope, intercept = np.polyfit(x - x[-1], y, 1)
    return float(slope), float(intercept)


def fate(
    steps: Sequence[int],
    train_acc: Sequence[float],
    test_acc: Sequence[float],
    test_loss: Sequence[float],
    *,
    cap: int,
    window: int,
    acc_threshold: float = 0.99,
    loss_threshold: float = SOLVED_TEST_LOSS,
) -> Fate:
    """The fate of one model from its history so far (rows up to now only)."""
    if len(steps) == 0:
        return Fate("did not fit", "nothing logged yet")
    solved = first_solved_step(steps, test_loss, test_acc, acc_threshold, loss_threshold)
    if solved is not None:
        return Fate("generalised", f"generalised at step {solved:,}", generalise_step=solved)
    if first_step_at_or_above(steps, train_acc, acc_threshold) is None:
        return Fate("did not fit", f"train accuracy {float(train_acc[-1]):.3f}, below {acc_threshold}")
    now = int(steps[-1])
    if now - int(steps[0]) < window:
        return Fate("not yet", f"fitted; fewer than {window:,} steps logged to judge the test loss's trend")
    trend = log_trend(steps, test_loss, window)
    if trend is None:
        return Fate("stuck", "the test loss is not finite")
    slope, level = trend
    per_1k = slope * 1000
    target = np.log10(loss_threshold)
    words = f"test loss {10**level:.2g}, {per_1k:+.3f} decades per 1,000 steps over the last {window:,}"
    if level <= target:  # the loss is there, the accuracy is not: judge by the accuracy's trend
        acc = log_trend(steps, 1.0 - np.asarray(test_acc, dtype=np.float64) + 1e-12, window)
        if acc is not None and acc[0] < 0:
            return Fate(
                "not yet", f"{words}; test accuracy {float(test_acc[-1]):.3f} and rising", slope_per_1k=per_1k
            )
        return Fate(
            "stuck", f"{words}; test accuracy {float(test_acc[-1]):.3f}, not rising", slope_per_1k=per_1k
        )
    if slope >= 0:
        return Fate("stuck", f"{words}: flat or rising", slope_per_1k=per_1k)
    fall = -slope * max(cap - now, window)  # decades it would fall by the cap at this rate
    if fall < MIN_FALL_DECADES:
        return Fate(
            "stuck", f"{words}: at this rate only {fall:.2f} decades more by the cap", slope_per_1k=per_1k
        )
    # log-linear extrapolation: an upper bound in practice, the fall speeds up as a model groks
    eta = now + int(np.ceil((level - target) / -slope))
    return Fate(
        "not yet", f"{words}: at this rate {loss_threshold:g} by ~{eta:,}", eta_step=eta, slope_per_1k=per_1k
    )


EARLY_STOP_ACC = 0.99  # train.stop_when_generalised: the accuracy verdict's "generalised"


@dataclass(frozen=True)
class Budget:
    """The adaptive budget of a run: `nominal` steps always; up to `cap` for a model that is "not
    yet" at the nominal budget; `margin` steps after one generalises. cap == nominal: fixed budget.
    early: a model also stops `margin` steps after its test accuracy first reached EARLY_STOP_ACC
    within the nominal budget (train.stop_when_generalised: sweeps that measure when models
    generalise, not where they end; the accuracy alone, as a model under weight decay may keep its
    test loss above the fate's 1e-2 at full accuracy)."""

    nominal: int
    cap: int
    margin: int
    window: int
    early: bool = False

    @property
    def adaptive(self) -> bool:
        return self.cap > self.nominal

    def decide(self, step: int, f: Fate, accurate_at: Optional[int] = None) -> Optional[str]:
        """Why a model whose update `step` (0-based) was just logged stops here, or None to go on.
        Only called at logged steps: the last trained step is always a logged one. accurate_at: the
        first logged step with test accuracy >= EARLY_STOP_ACC (the early rule's only input)."""
        trained = step + 1
        if trained >= self.cap:
            return f"reached the cap of {self.cap:,} steps"
        if trained < self.nominal:
            if self.early and accurate_at is not None and trained >= accurate_at + self.margin:
                return (
                    f"test accuracy {EARLY_STOP_ACC} at {accurate_at:,}; stopped {self.margin:,} steps "
                    "later (early)"
                )
            return None
        if f.fate == "generalised":
            if f.generalise_step < self.nominal:
                return "generalised within the nominal budget"
            if trained >= f.generalise_step + self.margin:
                return f"generalised at {f.generalise_step:,}; stopped {self.margin:,} steps later"
            return None
        if f.fate == "not yet":
            return None
        return f"{f.fate}: {f.reason}"

    def fate_of(self, steps, train_acc, test_acc, test_loss) -> Fate:
        return fate(steps, train_acc, test_acc, test_loss, cap=self.cap, window=self.window)


def extension_words(
    nominal: int, trained: int, stop_reason: Optional[str], at_nominal: Optional[Fate] = None
) -> str:
    """One line for the console and summary.json: how far past the nominal budget, and why."""
    extra = trained - nominal
    if extra <= 0:
        return f"trained the nominal {nominal:,} steps"
    why = f"{at_nominal.fate} at {nominal:,}: {at_nominal.reason}; " if at_nominal else ""
    return (
        f"trained {trained:,} steps, {extra:,} past the nominal {nominal:,} ({why}{stop_reason or 'stopped'})"
    )

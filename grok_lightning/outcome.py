"""Pure rules over a run's logged metrics: two verdicts, side by side, never one hiding the other.

1. The accuracy verdict (what the curves show): memorised = train accuracy first >= 0.99,
   generalised = test accuracy first >= 0.99, the delay between them, and plain words
   ("grokked after N steps", "generalised with training", "memorised, test accuracy X at the end",
   "did not fit the training set").
2. The article's phase rule over losses (docs/experiments.md, "Outcome classes"): with thresholds L
   and R, fail if the train loss never goes below L, memorise if the test loss never does,
   generalise if max(test/train loss) stays below R, else grok. Phase diagrams use this one,
   exactly as the article has it.

Where the two disagree, `disagreement` says why in one line, e.g. "article's rule: memorise, min
test loss 1.1e-05 > L = 1e-05".

The rule's losses can be floored (`loss_floor`): the article's sparse-parity sweep computed its
cross-entropy in float32, whose logged losses bottom out at 2^-23 (ARTICLE_FLOAT32_FLOOR); ours
reach 1e-13, which makes test/train ratios up to a thousand times larger. With a floor, the rule
compares max(loss, floor), as the article's did; the exact minima stay beside them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

OUTCOMES = ("fail", "memorise", "generalise", "grok")

# Accuracy verdict: a run "grokked" when it generalised at least GROK_DELAY_FACTOR x its memorise
# step after memorising (the article's "memorise first, generalise later"); sooner is
# "generalised with training". Main preset: 300 -> 46,300 (grok); parity with weight decay 1e-3:
# ~860 -> ~1,060 (generalise; configs/presets/parity/wd_higher.yaml).
GROK_DELAY_FACTOR = 1.0
# The "solved" step used by ensembles and seed statistics: test accuracy >= 0.99 AND test loss below
# this (on the logged scale), at the same logged step.
SOLVED_TEST_LOSS = 1e-2
# A loss "levels off" when over the last FLOOR_TAIL of the logged steps it stays within
# FLOOR_SPREAD x of its minimum (it moved by less than 10%): then it cannot reach L at these settings.
FLOOR_TAIL, FLOOR_SPREAD = 0.2, 1.1
# A test-accuracy fall worth a word (reverse grokking): peak minus final.
FALL_NOTE = 0.05
# The smallest loss the article's float32 sparse-parity sweep logged: 2^-23 (docs/experiments.md).
ARTICLE_FLOAT32_FLOOR = 2.0**-23


def rule_settings(section) -> dict:
    """The phase rule's keyword arguments from a config's `outcome` section."""
    return {
        "loss_threshold": float(section.loss_threshold),
        "ratio_threshold": float(section.ratio_threshold),
        "loss_floor": float(getattr(section, "loss_floor", 0.0) or 0.0),
    }


def floored(loss: Sequence[float], floor: float) -> np.ndarray:
    """Losses as the rule reads them: max(loss, floor), NaN kept (floor 0: the exact losses)."""
    values = np.asarray(loss, dtype=np.float64)
    return np.where(np.isnan(values), values, np.maximum(values, floor)) if floor > 0 else values


def first_step_at_or_above(steps: Sequence[int], values: Sequence[float], threshold: float) -> Optional[int]:
    """The first logged step whose value reaches threshold, or None."""
    for step, value in zip(steps, values):
        if value >= threshold:
            return int(step)
    return None


def first_solved_step(
    steps: Sequence[int],
    test_loss: Sequence[float],
    test_acc: Sequence[float],
    acc_threshold: float = 0.99,
    loss_threshold: float = SOLVED_TEST_LOSS,
) -> Optional[int]:
    """The first logged step with test accuracy >= acc_threshold and test loss < loss_threshold."""
    for step, loss, acc in zip(steps, test_loss, test_acc):
        if acc >= acc_threshold and loss < loss_threshold:
            return int(step)
    return None


def step_spread(steps: Sequence[int]) -> dict:
    """median, q1, q3, min, max of some steps (empty: {}); ensembles and seed statistics share it."""
    if len(steps) == 0:
        return {}
    q1, med, q3 = np.percentile(np.asarray(steps, dtype=float), [25, 50, 75])
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "min": int(min(steps)),
        "max": int(max(steps)),
    }


def outcome_class(
    train_loss: Sequence[float],
    test_loss: Sequence[float],
    loss_threshold: float = 1e-5,
    ratio_threshold: float = 5e4,
    loss_floor: float = 0.0,
) -> str:
    """The article's phase rule, in order: fail, memorise, generalise, else grok. A NaN loss never
    counts as fitted."""
    train, test = floored(train_loss, loss_floor), floored(test_loss, loss_floor)
    if train.size == 0 or not np.nanmin(train, initial=np.inf) <= loss_threshold:
        return "fail"
    if not np.nanmin(test, initial=np.inf) <= loss_threshold:
        return "memorise"
    if max_ratio(train, test) < ratio_threshold:
        return "generalise"
    return "grok"


def max_ratio(train_loss: Sequence[float], test_loss: Sequence[float]) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(test_loss, dtype=np.float64) / np.asarray(train_loss, dtype=np.float64)
    return float(np.nanmax(ratio, initial=0.0))


def phase_reason(phase: str, min_train: float, min_test: float, ratio: float, L: float, R: float) -> str:
    """The comparison that decided the article's phase, in one clause."""
    if phase == "fail":
        return f"min train loss {min_train:.2g} > L = {L:.0e}"
    if phase == "memorise":
        return f"min test loss {min_test:.2g} > L = {L:.0e}"
    if phase == "generalise":
        return f"max test/train loss ratio {ratio:.2g} < R = {R:.0e}"
    return f"max test/train loss ratio {ratio:.2g} >= R = {R:.0e}"


def loss_tail_note(steps: Sequence[int], loss: Sequence[float], threshold: float, side: str) -> Optional[str]:
    """Why a loss above the threshold did not reach it, from the last FLOOR_TAIL of the run: it
    levelled off (moved less than FLOOR_SPREAD: it cannot reach L at these settings), or it was
    still falling (and at its last rate would need about this many more steps)."""
    values = np.asarray(loss, dtype=np.float64)
    start = int(len(values) * (1 - FLOOR_TAIL))
    tail, tail_steps = values[start:], np.asarray(steps[start:], dtype=np.float64)
    if tail.size < 3 or not np.isfinite(tail).all() or tail.min() <= threshold:
        return None
    first, last = float(tail[0]), float(tail[-1])
    if tail.max() <= FLOOR_SPREAD * tail.min():
        return f"the {side} loss levels off near {last:.2g}: it cannot reach L at these settings"
    span = max(tail_steps[-1] - tail_steps[0], 1.0)
    rate = np.log(first / last) / span  # per step, on a log scale
    if rate <= 0:
        return None
    more = np.log(last / threshold) / rate
    return (
        f"the {side} loss is still falling, {first:.2g} -> {last:.2g} over the last {span:,.0f} steps; "
        f"at that rate it would reach L after ~{more:,.0f} more steps"
    )


def accuracy_verdict(
    steps: Sequence[int],
    train_acc: Sequence[float],
    test_acc: Sequence[float],
    acc_threshold: float = 0.99,
) -> tuple[str, str]:
    """(class, plain words) from the accuracy curves alone. The class uses the phase names so the
    two verdicts can be compared: grok / generalise / memorise / fail."""
    if len(steps) == 0:
        return "fail", "nothing was logged"
    mem = first_step_at_or_above(steps, train_acc, acc_threshold)
    gen = first_step_at_or_above(steps, test_acc, acc_threshold)
    final_train, final_test = float(train_acc[-1]), float(test_acc[-1])
    if mem is None:
        return "fail", f"did not fit the training set (train accuracy {final_train:.3f} at the end)"
    if gen is None:
        peak = float(np.nanmax(test_acc))
        text = f"memorised at step {mem:,}; test accuracy {final_test:.3f} at the end"
        if peak - final_test >= FALL_NOTE:
            at = int(steps[int(np.nanargmax(test_acc))])
            text += f" (it peaked at {peak:.3f} at step {at:,}, then fell)"
        return "memorise", text
    delay = gen - mem
    if delay >= GROK_DELAY_FACTOR * max(mem, 1):
        return "grok", f"grokked after {delay:,} steps: memorised at step {mem:,}, generalised at {gen:,}"
    return "generalise", f"generalised with training: memorised at step {mem:,}, generalised at {gen:,}"


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
    loss_floor: float = 0.0,
) -> dict:
    """One model's two verdicts: accuracy milestones and plain words, then the article's phase
    (`outcome`) with the comparison that decided it, and a one-line reason when they disagree.
    min_train_loss / min_test_loss / max_ratio are the rule's numbers (floored losses when
    loss_floor > 0); exact_* keep those of the exact losses."""
    L, R = loss_threshold, ratio_threshold
    exact_train, exact_test = (
        np.asarray(train_loss, dtype=np.float64),
        np.asarray(test_loss, dtype=np.float64),
    )
    train_loss, test_loss = floored(exact_train, loss_floor), floored(exact_test, loss_floor)
    min_train = float(np.nanmin(train_loss, initial=np.inf))
    min_test = float(np.nanmin(test_loss, initial=np.inf))
    ratio = max_ratio(train_loss, test_loss)
    mem = first_step_at_or_above(steps, train_acc, acc_threshold)
    gen = first_step_at_or_above(steps, test_acc, acc_threshold)
    verdict, words = accuracy_verdict(steps, train_acc, test_acc, acc_threshold)
    phase = outcome_class(train_loss, test_loss, L, R)
    reason = phase_reason(phase, min_train, min_test, ratio, L, R)
    if loss_floor > 0:
        reason += f" (losses floored at {loss_floor:.3g})"
    disagreement = None
    if verdict != phase:
        disagreement = f"article's rule: {phase}, {reason}"
        side = {"fail": "train", "memorise": "test"}.get(phase)
        note = loss_tail_note(steps, train_loss if side == "train" else test_loss, L, side) if side else None
        if note:
            disagreement += f" ({note})"
    return {
        "memorise_step": mem,
        "generalise_step": gen,
        "grok_delay_steps": None if mem is None or gen is None else gen - mem,
        "solved_step": first_solved_step(steps, test_loss, test_acc, acc_threshold),
        "verdict": verdict,
        "verdict_text": words,
        "min_train_loss": min_train,
        "min_test_loss": min_test,
        "max_ratio": ratio,
        "loss_floor": loss_floor,
        "exact_min_train_loss": float(np.nanmin(exact_train, initial=np.inf)),
        "exact_min_test_loss": float(np.nanmin(exact_test, initial=np.inf)),
        "exact_max_ratio": max_ratio(exact_train, exact_test),
        "outcome": phase,
        "outcome_reason": reason,
        "disagreement": disagreement,
    }


def headline(summary: dict) -> str:
    """The verdicts in one or two lines for consoles and figure titles."""
    line = f"{summary['verdict_text']} | article's rule: {summary['outcome']}"
    if summary.get("disagreement"):
        line += f"\nverdicts differ: {summary['disagreement']}"
    return line


# ------------------------------------------------------------------------------ curve shapes
def zigzag(steps: Sequence[int], values: Sequence[float], factor: float = 2.0) -> list[dict]:
    """A loss curve as its monotone swings on a log scale: a swing ends when the curve moves back
    by `factor` from its extreme (smaller wiggles are noise). Returns dicts with kind ("fall" or
    "rise"), start_step, end_step, start, end. The article's shapes in these words:
    grokking's test loss = fall; reverse grokking = fall, rise; gen_mem_gen = fall, rise, fall."""
    pts = [(int(s), float(v)) for s, v in zip(steps, values) if np.isfinite(v) and v > 0]
    if len(pts) < 2:
        return []
    x = np.log([v for _, v in pts])
    thr = float(np.log(factor))
    segments: list[dict] = []
    trend, pivot, ext, lo, hi = None, 0, 0, 0, 0

    def close(kind: str, a: int, b: int) -> None:
        segments.append(
            {
                "kind": kind,
                "start_step": pts[a][0],
                "end_step": pts[b][0],
                "start": pts[a][1],
                "end": pts[b][1],
            }
        )

    for i in range(1, len(pts)):
        if trend is None:
            lo = i if x[i] < x[lo] else lo
            hi = i if x[i] > x[hi] else hi
            if x[i] - x[lo] >= thr:
                trend, pivot, ext = "rise", lo, i
            elif x[hi] - x[i] >= thr:
                trend, pivot, ext = "fall", hi, i
        elif trend == "fall":
            if x[i] < x[ext]:
                ext = i
            elif x[i] - x[ext] >= thr:
                close("fall", pivot, ext)
                trend, pivot, ext = "rise", ext, i
        else:
            if x[i] > x[ext]:
                ext = i
            elif x[ext] - x[i] >= thr:
                close("rise", pivot, ext)
                trend, pivot, ext = "fall", ext, i
    if trend is not None:
        close(trend, pivot, ext)
    return segments


def has_swings(segments: Sequence[dict], kinds: Sequence[str]) -> bool:
    """Whether the swings contain `kinds` in this order (not necessarily adjacent)."""
    it = iter(s["kind"] for s in segments)
    return all(any(k == want for k in it) for want in kinds)


def swing_words(segments: Sequence[dict]) -> str:
    """e.g. "fall 0.062 -> 0.0032 (steps 0-2,000), rise -> 0.0052 (to 30,000)"."""
    parts = []
    for i, s in enumerate(segments):
        head = (
            f"{s['kind']} {s['start']:.2g} -> {s['end']:.2g}" if i == 0 else f"{s['kind']} -> {s['end']:.2g}"
        )
        parts.append(f"{head} (to step {s['end_step']:,})")
    return ", ".join(parts) or "no swing of that size"

"""The two verdicts against hand-made histories: accuracy milestones and the article's phase rule."""

import numpy as np
import pytest

from grok_lightning import outcome

STEPS = list(range(0, 10_000, 100))  # 100 logged steps


def ramp(at: int, lo: float, hi: float) -> list[float]:
    """lo before step `at`, hi from it on."""
    return [hi if s >= at else lo for s in STEPS]


def summarise(train_loss, test_loss, train_acc, test_acc, **kw):
    return outcome.summarise(STEPS, train_loss, test_loss, train_acc, test_acc, **kw)


def test_grok_both_verdicts_agree():
    s = summarise(ramp(300, 1.0, 1e-7), ramp(6000, 1.0, 1e-6), ramp(300, 0.1, 1.0), ramp(6000, 0.0, 1.0))
    assert (s["memorise_step"], s["generalise_step"], s["grok_delay_steps"]) == (300, 6000, 5700)
    assert s["verdict"] == "grok" and s["outcome"] == "grok" and s["disagreement"] is None
    assert s["verdict_text"].startswith("grokked after 5,700 steps")
    assert s["solved_step"] == 6000


def test_generalised_with_training():
    s = summarise(ramp(800, 1.0, 1e-7), ramp(800, 1.0, 1e-7), ramp(800, 0.5, 1.0), ramp(900, 0.5, 1.0))
    assert s["verdict"] == "generalise" and "generalised with training" in s["verdict_text"]
    assert s["outcome"] == "generalise"  # both losses fall together: ratio 1


def test_main_preset_case_rule_says_memorise_with_one_line_reason():
    # test accuracy reaches 1.0 but the test loss bottoms out at 1.1e-5, just above L = 1e-5
    test_loss = [max(1.1e-5, 0.8**i) for i in range(len(STEPS))]
    s = summarise(ramp(300, 1.0, 1e-8), test_loss, ramp(300, 0.1, 1.0), ramp(5000, 0.0, 1.0))
    assert s["verdict"] == "grok" and s["outcome"] == "memorise"
    assert s["disagreement"].startswith("article's rule: memorise, min test loss 1.1e-05 > L = 1e-05")
    assert "\n" not in s["disagreement"]


def test_loss_floor_named_when_weight_decay_keeps_the_loss_above_L():
    # 100% accuracy, CE/p levelled off near 6.8e-3 (within 10% over the last fifth of the run)
    floor = [6.8e-3 + 1e-2 * 0.9**i for i in range(len(STEPS))]
    s = summarise(floor, floor, ramp(2000, 0.5, 1.0), ramp(2000, 0.5, 1.0))
    assert s["verdict"] == "generalise" and s["outcome"] == "fail"
    assert "levels off near 0.0068" in s["disagreement"] and "cannot reach L" in s["disagreement"]


def test_a_loss_still_falling_is_said_so_with_the_steps_it_would_need():
    # fixed_embed's case: still falling steadily on a log scale when the run ends
    falling = list(np.geomspace(1.0, 2e-5, len(STEPS)))
    s = summarise(falling, falling, ramp(2000, 0.5, 1.0), ramp(2000, 0.5, 1.0))
    assert s["outcome"] == "fail" and "levels off" not in s["disagreement"]
    assert "the train loss is still falling" in s["disagreement"]
    # log(2e-5 / 1e-5) / (log(1 / 2e-5) / 9,900 steps) = ~634 more steps at the last rate
    more = float(s["disagreement"].split("after ~")[1].split(" more")[0].replace(",", ""))
    assert 600 <= more <= 670


def test_memorise_and_reverse_grokking_words():
    test_acc = [min(0.85, s / 5000) if s <= 5000 else 0.85 - (s - 5000) / 50_000 for s in STEPS]
    s = summarise(ramp(500, 1.0, 1e-6), [0.5] * len(STEPS), ramp(500, 0.1, 1.0), test_acc)
    assert s["verdict"] == "memorise" and s["outcome"] == "memorise" and s["disagreement"] is None
    assert "test accuracy 0.752 at the end" in s["verdict_text"]
    assert "peaked at 0.850 at step 4,300, then fell" in s["verdict_text"]


def test_did_not_fit():
    s = summarise([1.0] * len(STEPS), [1.0] * len(STEPS), [0.4] * len(STEPS), [0.01] * len(STEPS))
    assert s["verdict"] == "fail" and s["outcome"] == "fail"
    assert s["verdict_text"] == "did not fit the training set (train accuracy 0.400 at the end)"


@pytest.mark.parametrize(
    "L,R,expected",
    [(1e-5, 5e4, "grok"), (1e-5, 1e9, "generalise"), (1e-9, 5e4, "fail"), (5e-7, 5e4, "memorise")],
)
def test_phase_rule_thresholds(L, R, expected):
    train, test = ramp(300, 1.0, 1e-8), ramp(6000, 1.0, 1e-6)
    assert outcome.outcome_class(train, test, L, R) == expected


def test_nan_never_counts_as_fitted():
    assert outcome.outcome_class([float("nan")] * 3, [float("nan")] * 3) == "fail"


def test_solved_step_needs_accuracy_and_loss_at_the_same_step():
    acc = ramp(1000, 0.0, 1.0)
    loss = ramp(3000, 0.5, 1e-3)
    assert outcome.first_solved_step(STEPS, loss, acc) == 3000
    assert outcome.first_solved_step(STEPS, [0.5] * len(STEPS), acc) is None


def test_zigzag_reads_the_article_shapes():
    steps = list(range(0, 3000, 10))
    t = np.asarray(steps, dtype=float)
    # generalise (1e-1 -> 1e-6), memorise (back up to 1e-3), generalise again (1e-8), with wiggles
    log_loss = np.interp(t, [0, 1000, 2000, 2990], [-1, -6, -3, -8]) + 0.05 * np.sin(t / 7)
    segs = outcome.zigzag(steps, 10**log_loss, factor=2.0)
    assert [s["kind"] for s in segs] == ["fall", "rise", "fall"]
    assert abs(segs[1]["start_step"] - 1000) <= 20 and abs(segs[1]["end_step"] - 2000) <= 20
    assert outcome.has_swings(segs, ["fall", "rise", "fall"]) and outcome.has_swings(segs, ["fall", "rise"])
    assert not outcome.has_swings(segs, ["rise", "rise"])
    # a 1.6x bump is below a factor of 2: one fall
    bump = 10 ** np.interp(t, [0, 1000, 2000, 2990], [-1, -2.5, -2.3, -2.5])
    assert [s["kind"] for s in outcome.zigzag(steps, bump, factor=2.0)] == ["fall"]
    assert "fall 0.1 -> 0.0032" in outcome.swing_words(outcome.zigzag(steps, bump))


def test_article_loss_floor_turns_a_ratio_of_tiny_losses_back_into_generalise():
    # both losses fall together to the float32 floor and beyond: exact ratio 1e5 at the end
    train = [max(1e-13, 0.5 * 0.7**i) for i in range(len(STEPS))]
    test = [max(1e-8, 0.5 * 0.7**i) for i in range(len(STEPS))]
    acc = ramp(300, 0.5, 1.0)
    exact = summarise(train, test, acc, acc)
    article = summarise(train, test, acc, acc, loss_floor=outcome.ARTICLE_FLOAT32_FLOOR)
    assert exact["outcome"] == "grok" and exact["max_ratio"] == pytest.approx(1e5)
    assert article["outcome"] == "generalise" and article["max_ratio"] < 1e2
    assert article["exact_max_ratio"] == pytest.approx(1e5) and article["exact_min_train_loss"] == 1e-13
    assert article["min_train_loss"] == outcome.ARTICLE_FLOAT32_FLOOR
    assert "floored at 1.19e-07" in article["outcome_reason"]
    # a floor below every loss changes nothing; NaN still never counts as fitted
    assert summarise(train, test, acc, acc, loss_floor=1e-20)["outcome"] == "grok"
    assert outcome.outcome_class([float("nan")] * 3, [1.0] * 3, loss_floor=1e-7) == "fail"

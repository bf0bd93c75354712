"""The plan's cost model (grok_lightning.sweep.eta): which measured K prices a batch, how batches
are dealt to ranks, and the makespan that is printed as the ETA."""

import pytest

from grok_lightning.sweep import eta


def test_a_batch_takes_the_rate_between_the_measured_sizes_around_it():
    measured = {2: 1.0, 4: 0.6, 8: 0.5, 16: 0.45, 32: 0.7, 45: 0.9}
    assert eta.ms_per_model_step(measured, 23) == pytest.approx(0.45 + 0.25 * 7 / 16)  # 45 at K=32: 23 + 22
    assert eta.ms_per_model_step(measured, 16) == 0.45
    assert eta.ms_per_model_step(measured, 1) == 1.0
    assert eta.ms_per_model_step(measured, 100) == 0.9
    with pytest.raises(ValueError):
        eta.ms_per_model_step({}, 3)


def test_batch_seconds_are_steps_times_rate_plus_a_fixed_start():
    assert eta.batch_seconds(45, 20_000, 0.1) == pytest.approx(90.0 + eta.BATCH_OVERHEAD_S)


def test_longest_first_to_the_least_loaded_rank():
    costs = [5.0, 3.0, 3.0, 2.0, 2.0, 2.0]
    owners = eta.assign(costs, 2)
    assert owners == [0, 1, 1, 0, 1, 0]  # 5 | 3+3 -> 5+2 | 6+2 -> 7+2 | 8: loads 9 and 8
    assert eta.makespan(costs, owners, 2) == 9.0
    assert eta.makespan(costs, eta.assign(costs, 1), 1) == sum(costs)
    assert eta.assign(costs, 8)[:6] == [0, 1, 2, 3, 4, 5]  # more ranks than batches: one each
    assert eta.makespan([], [], 3) == 0.0


def test_every_rank_computes_the_same_assignment():
    costs = [1.0] * 7 + [4.0, 4.0]
    assert len({tuple(eta.assign(costs, 3)) for _ in range(5)}) == 1


def test_durations_read_in_the_unit_that_fits():
    assert eta.fmt_duration(42) == "42 s"
    assert eta.fmt_duration(600) == "10.0 min"
    assert eta.fmt_duration(3 * 3600) == "3.00 h"
    assert eta.fmt_duration(None) == "unknown"


def test_the_schedule_model_against_a_recorded_sweep():
    """A real sweep's plan and batch wall times (the parity grid, 2,000 steps, 2 workers): the
    printed ETA is the makespan of its estimates, and the same schedule over the batches' actual
    times comes within 25% of the training wall time (the ETA's own error is the estimates')."""
    import json
    from pathlib import Path

    rec = json.loads((Path(__file__).parent / "data" / "parity_grid_2k_timings.json").read_text())
    est = [b["est_s"] for b in rec["batches"]]
    owners = [b["owner"] for b in rec["batches"]]
    assert owners == eta.assign(est, rec["world_size"])  # the plan's owners are LPT's
    assert eta.makespan(est, owners, rec["world_size"]) == pytest.approx(rec["eta_s"])
    actual = [b["wall_s"] for b in rec["batches"]]
    # each rank also takes the others' unstarted batches, so the wall time is at most about this
    replayed = eta.makespan(actual, eta.assign(actual, rec["world_size"]), rec["world_size"])
    assert abs(replayed / rec["training_wall_s"] - 1) < 0.25

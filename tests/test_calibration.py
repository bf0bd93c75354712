"""Calibration (how many models per batch) against a fake timer: every candidate is measured,
repeated, and one noisy sample neither stops the search nor picks the size; repeated runs agree."""

import random

import pytest
import torch
from rich.console import Console

from grok_lightning import sweep as S
from grok_lightning.sweep import calibration as SC
from tests.test_sweep import MINI

CPU = torch.device("cpu")


def _group(tmp_path, seeds=23):  # 2 weight decays x 23 seeds: 46 models per group
    path = tmp_path / "mini.yaml"
    path.write_text(MINI.format(steps=100))
    sweep = S.load_sweep([f"sweep={path}", f"seeds={seeds}", "calibration.repeats=3"])
    return sweep.groups[0], sweep.scfg.calibration


def _calibrate(group, cal, cost, cap=45):
    """calibrate with `cost(K, repeat)` as the measurement; returns (entry, calls per K)."""
    calls: dict[int, int] = {}

    def measure(cfg, models, device, cal):
        k = len(models) - 1  # K models and the padding copy
        calls[k] = calls.get(k, 0) + 1
        return cost(k, calls[k] - 1) * k / len(models)  # per trained model: calibrate scales it back

    entry = S.calibrate(group, cap, CPU, cal, Console(quiet=True), measure=measure)
    return entry, calls


def test_one_noisy_sample_neither_stops_the_search_nor_picks_k(tmp_path):
    group, cal = _group(tmp_path)
    curve = {2: 1.0, 4: 0.7, 8: 0.5, 16: 0.4, 32: 0.3, 45: 0.35}
    # K=4's first timing caught another process (6x): the old search stopped there and kept K=2
    entry, calls = _calibrate(group, cal, lambda k, r: curve[k] * (6.0 if (k, r) == (4, 0) else 1.0))
    assert entry["K"] == 32
    assert calls == {k: 3 for k in curve}  # every candidate up to the cap, each repeated, never K=1
    assert entry["ms_per_model_step"]["4"] == pytest.approx(0.7)


def test_repeated_calibrations_pick_the_same_k(tmp_path):
    group, cal = _group(tmp_path)
    # flat from 8 to 32 (memory-bound): the argmin of noisy timings wanders between 8, 16 and 32
    curve = {2: 1.0, 4: 0.62, 8: 0.5, 16: 0.49, 32: 0.495, 45: 0.7}
    chosen = set()
    for seed in range(20):
        rng = random.Random(seed)

        disturbed = {k: rng.randrange(6) for k in curve}  # per K, one repeat of 3 is slow, or none

        def cost(k, r, rng=rng, disturbed=disturbed):
            return curve[k] * rng.uniform(0.99, 1.01) * (4.0 if disturbed[k] == r else 1.0)

        chosen.add(_calibrate(group, cal, cost)[0]["K"])
    assert chosen == {8}


def test_a_slower_k_is_never_chosen(tmp_path):
    group, cal = _group(tmp_path)
    curve = {2: 0.4, 4: 0.6, 8: 0.9}  # batching does not pay here: the least of them, K=2
    entry, _ = _calibrate(group, cal, lambda k, r: curve[k], cap=8)
    assert entry["K"] == 2
    assert S.choose_k({2: 1.0, 4: 1.04, 8: 0.9}, 0.05) == 8  # tolerance is relative to the best only


class FakeClock:
    """perf_counter for _StepTimer: each start/end pair of calls lasts durations[i] seconds."""

    def __init__(self, durations):
        self.durations, self.t, self.n = durations, 0.0, 0

    def __call__(self):
        if self.n % 2:  # the end of call n // 2
            self.t += self.durations[self.n // 2]
        self.n += 1
        return self.t


def test_one_slow_call_does_not_move_the_measurement(tmp_path):
    group, cal = _group(tmp_path, seeds=2)
    durations = [0.02] * 100
    durations[3] = 5.0  # one call (10 steps) caught behind another process
    cal.max_seconds = 100.0
    ms = SC.measure_ms_per_model_step(group.cfg, group.models[:2], CPU, cal, clock=FakeClock(durations))
    spc = group.cfg.train.steps_per_call
    assert ms == 1e3 * 0.02 / spc / 2  # the median call, per model-step; a mean would be 10x this

"""Numerics ensembles: members share the initial weights and data and differ only by numerics."""

import json

import numpy as np

from grok_lightning import ensemble, histories
from tests.conftest import TINY_P13, read_csv_rows


def test_perturbed_members_start_together_and_drift_apart(tmp_path):
    out = tmp_path / "ens"
    members = ["precisions=64", "threads=0", "perturb=2", "scale=1e-9"]
    args = ["task=modadd", *TINY_P13, "train.max_steps=400", *members, f"out_dir={out}"]
    assert ensemble.main(args) == 0
    rows = read_csv_rows(out / "members.csv")
    assert [r["perturbation"] for r in rows] == ["none", "1e-09 #1", "1e-09 #2"]
    assert [float(r["perturbed_share"]) for r in rows][1:] == [1.0, 1.0]  # float64: every weight moved
    h = histories.load(out)
    ref, p1, p2 = h["m00.0"], h["m01.0"], h["m01.1"]
    for other in (p1, p2):  # same start: the first logged losses agree far beyond float32
        np.testing.assert_allclose(other["test/loss"][0], ref["test/loss"][0], rtol=1e-6)
    finals = {r["final_test_loss"] for r in rows}  # float64, as the run measured it
    assert len(finals) == 3  # ...and they do not stay bit-identical
    result = json.loads((out / "ensemble.json").read_text())
    assert result["members"] == 3 and result["solved"] == sum(r["solved_step"] != "" for r in rows)
    assert (out / "spread.png").stat().st_size > 5_000


def test_spread_statistics():
    rows = [{"solved_step": s} for s in (100, 200, 300, None)]
    s = ensemble.spread(rows, 500)
    assert (s["members"], s["solved"], s["median"], s["min"], s["max"]) == (4, 3, 200, 100, 300)
    assert (s["q1"], s["q3"]) == (150, 250)


def test_bad_ensemble_option_is_one_error_line(tmp_path, capsys):
    assert ensemble.main(["task=modadd", "perturb=-1", f"out_dir={tmp_path / 'x'}"]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "x").exists()
    assert ensemble.main(["task=modadd", "precisions=16", f"out_dir={tmp_path / 'x'}"]) == 2
    assert not (tmp_path / "x").exists()

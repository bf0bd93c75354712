"""The benchmarks (benchmarks/, `make bench`) run end to end in --quick mode: every table printed, a
row per shape, the numbers in the JSON file. What they measure is not asserted: no timings."""

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from benchmarks import __main__ as bench
from benchmarks import all_cores, compiled, settings

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [f"parity {n} x {size}" for n, size in settings.PARITY_SHAPES] + ["modadd main (24 x 500)"]


def _positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def _check_tables(results: dict, printed: str, processes: int) -> None:
    rows = results["throughput"]["rows"]
    assert [r["shape"] for r in rows] == SHAPES
    for r in rows:
        assert all(_positive(r[col]) for col in ("sequential", "batched", "all_cores")), r
        assert 2 <= r["K"] <= settings.QUICK.group_models or r["shape"].startswith("modadd")
        assert r["shape"] in printed
    assert rows[-1]["K"] == settings.MODADD_BATCH
    assert results["throughput"]["processes"] == processes

    assert [r["shape"] for r in results["calibration"]["rows"]] == [list(s) for s in settings.PARITY_SHAPES]
    assert _positive(results["speedup"]["ratio"])
    compile_rows = results["compile"]["rows"]
    assert len(compile_rows) == len(settings.PARITY_SHAPES) + 1, compile_rows
    assert all(_positive(r["compiled_ms"]) for r in compile_rows), compile_rows
    # the parity batches are compiled at the K the throughput table chose for the largest shape
    k = rows[len(settings.PARITY_SHAPES) - 1]["K"]
    assert all(f"K={k} (+ copy)" in r["shape"] for r in compile_rows[:-1]), compile_rows


def test_quick_bench_prints_and_writes_a_row_per_shape(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps table cells to the terminal's width
    out = tmp_path / "results.json"
    names = ("speedup", "calibration", "throughput", "compile", "grid_bound")
    only = [a for name in names for a in ("--only", name)]
    assert bench.main(["--quick", *only, "--processes", "1", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert "overhead" not in results
    printed = capsys.readouterr().out
    _check_tables(results, printed, processes=1)
    bound = results["grid_bound"]
    assert len(bound["rows"]) == 25 and all(_positive(r["ms"]) for r in bound["rows"])
    # the floor is the products' time over the grid: 45 models x 20,000 steps per shape, on every core
    one_core_s = sum(r["ms"] for r in bound["rows"]) / 1e3 * 45 * 20_000
    assert bound["one_core_h"] == pytest.approx(one_core_s / 3600)
    assert bound["floor_h"] == pytest.approx(bound["one_core_h"] / bound["cores"])
    assert f"h on {bound['cores']} cores" in printed


@pytest.mark.slow
def test_make_bench_quick_runs_everything(tmp_path):
    out = tmp_path / "results.json"
    # -o: use the installed .venv as it is (a changed pyproject.toml would re-install it)
    make = ["make", "-s", "-o", ".venv/.installed", "bench", f"ARGS=--quick --out {out}"]
    done = subprocess.run(
        make, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    _check_tables(results, done.stdout, processes=os.cpu_count())
    assert _positive(results["overhead"]["ratio"]) and _positive(results["overhead"]["callbacks_ratio"])


def _broken_backend(gm, example_inputs):
    raise RuntimeError("no compiler here\nsecond line of a long story")


def test_a_failed_compile_is_one_line_in_the_table_not_a_traceback():
    cfg, models = settings.modadd_main(steps=20)
    result = compiled.measure(cfg, models, steps=2, backend=_broken_backend)
    assert _positive(result["eager_ms"]) and "compiled_ms" not in result
    assert "no compiler here" in result["error"] and "\n" not in result["error"]


def test_a_worker_that_dies_is_reported_not_waited_for():
    # data.train_size=0 is refused by the config check inside the worker process
    job = {"task": "parity", "n_neurons": 16, "train_size": 0, "k": 2, "steps": 20}
    (result,) = all_cores.run_all([job], processes=1)
    assert "exited with code" in result["error"]


@pytest.mark.parametrize(
    "argv", [["--steps", "0"], ["--only", "nothing"], ["--processes", "-1"], ["--out", "no/such/dir/r.json"]]
)
def test_bad_options_stop_with_exit_code_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        bench.main(["--out", str(tmp_path / "r.json"), *argv])
    assert stop.value.code == 2 and not (tmp_path / "r.json").exists()
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("python -m benchmarks: error:")

"""seed_features: the pure measures on hand-made inputs, and the command end to end on a real tiny
sweep (its re-training must reproduce the sweep's own numbers), with the sweep page's section."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from grok_lightning import histories
from grok_lightning import seed_features as SF
from tests.conftest import TINY, read_csv_rows, run_sweep_file


# ------------------------------------------------------------------------------ pure functions
def test_average_ranks_share_ties():
    assert SF.average_ranks([3, 1, 3, 2]).tolist() == [3.5, 1.0, 3.5, 2.0]


@pytest.mark.parametrize(
    "values, positive, auc",
    [
        ([1, 2, 3, 4], [0, 0, 1, 1], 1.0),  # every positive above every negative
        ([1, 2, 3, 4], [1, 1, 0, 0], 0.0),
        ([5, 5, 5, 5], [0, 1, 0, 1], 0.5),  # all tied: tells nothing
        ([1, 2, 2, 3], [0, 1, 0, 1], 0.875),  # pairs (2>1) (2=2: half) (3>1) (3>2): 3.5 of 4
        ([1, 3, 2, 4], [0, 0, 1, 1], 0.75),
        ([math.nan, 1, 2, 3, 4], [1, 0, 0, 1, 1], 1.0),  # a NaN value is left out
    ],
)
def test_roc_auc_on_known_orderings(values, positive, auc):
    assert SF.roc_auc(values, positive) == pytest.approx(auc)


def test_roc_auc_of_one_fate_is_nan():
    assert math.isnan(SF.roc_auc([1, 2, 3], [1, 1, 1]))


def test_permutation_test_tells_a_separating_feature_from_noise():
    rng = np.random.default_rng(1)
    fate = np.array([True] * 8 + [False] * 8)
    X = np.stack([fate + 0.01 * rng.random(16), rng.random(16), rng.random(16)], axis=1)
    p_each, p_family = SF.auc_permutation_test(X, fate, n_permutations=500)
    assert p_each[0] < 0.01 and p_family[0] < 0.01  # 1 of C(16, 8) = 12,870 labellings is as good
    assert (p_family >= p_each).all() and (p_each > 0).all()  # the observed labelling counts too


def test_margin_is_the_correct_logit_minus_the_largest_other():
    logits = torch.tensor([[[3.0, 1.0, 2.0], [0.0, 5.0, 5.0], [4.0, -1.0, 0.5]]])
    targets = torch.tensor([[0, 1, 2]])
    assert SF.margins(logits, targets).tolist() == [[1.0, 0.0, -3.5]]  # a tie is not fitted


def test_split_coverage_counts_targets_differences_and_values():
    pairs = np.array([[0, 0], [0, 1], [1, 2], [2, 4]])  # p = 5: sums 0 1 3 1, |differences| 0 1 1 2
    c = SF.split_coverage(pairs, 5)
    assert (c["target_min"], c["target_max"]) == (0, 2)
    assert c["target_cv"] == pytest.approx(np.std([1, 2, 0, 1, 0]) / 0.8)
    assert (c["difference_min"], c["difference_max"]) == (1, 2)
    assert (c["value_min"], c["value_max"]) == (0, 2)  # (0, 0) counts value 0 once; 3 never appears
    assert c["value_cv"] == pytest.approx(np.std([2, 2, 2, 0, 1]) / 1.4)
    assert c["target_fourier_peak"] == pytest.approx(np.abs(np.fft.fft([1, 2, 0, 1, 0]))[1:].max() / 4)


def test_rank_correlation_ties_the_never_solved_after_the_rest():
    solved = [100, 200, None, 300, None]
    assert SF.rank_correlation([1, 2, 5, 3, 4], solved) == pytest.approx(
        np.corrcoef([1, 2, 4.5, 3, 4.5], [1, 2, 5, 3, 4])[0, 1]
    )
    assert SF.rank_correlation([5, 4, 1, 3, 2], solved) < -0.9  # higher values, sooner
    assert math.isnan(SF.rank_correlation([1, 1, 1, 1, 1], solved))


def test_compare_sorts_by_separation_and_drops_constant_features():
    solved = [10, 20, 30, None, None, None]
    features = {
        "noise": np.array([1.0, 3, 2, 2, 1, 3]),
        "lower_when_generalised": np.array([1.0, 2, 3, 4, 5, 6]),
        "constant": np.ones(6),
    }
    rows = SF.compare(features, [s is not None for s in solved], solved, n_permutations=200)
    assert [r["feature"] for r in rows] == ["lower_when_generalised", "noise"]
    top = rows[0]
    assert top["auc"] == 0.0 and top["generalised"]["mean"] == 2.0 and top["not_generalised"]["max"] == 6.0
    assert 0 < top["p_value"] <= top["p_family"] <= 1
    assert top["rho_solved_step"] == pytest.approx(np.corrcoef([1, 2, 3, 4, 5, 6], [1, 2, 3, 5, 5, 5])[0, 1])
    assert "lower_when_generalised" in SF.verdict(rows, 6)


def test_model_features_agree_with_the_objective():
    from grok_lightning import config as C
    from grok_lightning.module import build_module

    cfg = C.load("modadd", None, TINY)
    dm, module = build_module(cfg, [0, 1], [1e-3] * 2, [1.0] * 2)
    module.attach_data(dm)
    f = SF.model_features(module.model, module.objective, module.data)
    logits = module.model(*module.data["train"][0])
    acc = module.objective.accuracy(logits, module.data["train"][1]).numpy()
    assert f["train_acc"] == pytest.approx(acc) and f["logit_std"].shape == (2,)
    assert f["norm_embed"] == pytest.approx(
        module.model.weights["embed"].detach().flatten(1).norm(dim=1).numpy()
    )
    assert (f["in_top5_energy"] > 0).all() and (f["in_top5_energy"] <= 1).all()
    with torch.no_grad():
        module.model.weights["hidden"][1, :, 0] = 0.0  # model 1's neuron 0 can never switch on
    assert SF.model_features(module.model, module.objective, module.data)["dead_neurons"].tolist() == [0, 1]
    with torch.no_grad():
        module.model.weights["hidden"][0] = -module.model.weights["hidden"][0].abs()
        module.model.weights["embed"][0] = module.model.weights["embed"][0].abs()
    f = SF.model_features(module.model, module.objective, module.data)  # model 0: nothing ever fires
    assert f["silent_pairs"][0] == 1.0 and f["margin_median"][0] == 0.0 and f["dead_neurons"][0] == 4


# ------------------------------------------------------------------------------ the command
TINY_SWEEP = """\
task: modadd
base:
  data: {p: 11, train_fraction: 0.5}
  model: {d_embed: 8, n_neurons: 4, init: torch}
  optim: {lr: 1.0e-2}
  train: {max_steps: 40}
  logger: csv
grid:
  data.seed: [0, 1]
seeds: 3
calibration: {enabled: false}
"""


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """A real tiny sweep (two splits x three initialisations), fates set by hand: half generalised."""
    out = run_sweep_file(tmp_path_factory.mktemp("seed_features"), "tiny", TINY_SWEEP)
    rows = read_csv_rows(out / "results.csv")
    for k, r in enumerate(rows):
        r["solved_step"] = "30" if k % 2 else ""
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_command_writes_three_files_and_reproduces_the_sweep(tiny_sweep, capsys):
    from grok_lightning.explorer import write_sweep_page
    from grok_lightning.explorer.sweep_page import sweep_payload

    assert SF.main([str(tiny_sweep), "--steps", "40"]) == 0
    assert "AUC" in capsys.readouterr().out
    rows = read_csv_rows(tiny_sweep / "seed_features.csv")
    results = {r["model_id"]: r for r in read_csv_rows(tiny_sweep / "results.csv")}
    assert [r["model_id"] for r in rows] == list(results) and len(rows) == 6
    assert {r["data.seed"] for r in rows} == {"0", "1"}
    assert [r["generalised"] for r in rows] == ["False", "True"] * 3
    # Same split and initialisation as the sweep: after its 40 steps, the sweep's last logged test
    # loss (after update 39). The split features follow data.seed, not the model's seed.
    saved = histories.load(tiny_sweep)
    for r in rows:
        assert float(r["test_loss@40"]) == pytest.approx(
            float(saved[r["model_id"]]["test/loss"][-1]), rel=1e-5
        )
    by_split = {}
    for r in rows:
        by_split.setdefault(r["data.seed"], set()).add(r["split_target_cv"])
    assert all(len(v) == 1 for v in by_split.values()) and by_split["0"] != by_split["1"]

    result = json.loads((tiny_sweep / "seed_features.json").read_text())
    assert (result["models"], result["generalised"], result["not_generalised"]) == (6, 3, 3)
    assert result["snapshots"] == [0, 10, 20, 40]
    seps = [r["separation"] for r in result["features"]]
    assert seps == sorted(seps, reverse=True) and result["verdict"]
    assert (tiny_sweep / "seed_features.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    section = sweep_payload(tiny_sweep)["seed_features"]
    assert (section["models"], section["generalised"], section["budget"]) == (6, 3, 40)
    assert [r["feature"] for r in section["rows"]] == [r["feature"] for r in result["features"][:15]]
    assert section["figure"].startswith("data:image/png;base64,")
    assert 'id="explorer-data"' in write_sweep_page(tiny_sweep).read_text()


def test_sweep_page_shows_the_section_in_a_browser(tiny_sweep):
    from grok_lightning.explorer import write_sweep_page
    from grok_lightning.explorer.measure import browser_missing, console_errors, start_browser

    if browser_missing():
        pytest.skip(f"no headless browser: {browser_missing()}")
    if not (tiny_sweep / "seed_features.json").is_file():
        assert SF.main([str(tiny_sweep), "--steps", "10"]) == 0
    shown = len(json.loads((tiny_sweep / "seed_features.json").read_text())["features"][:15])
    driver = start_browser()
    try:
        driver.get(write_sweep_page(tiny_sweep).resolve().as_uri())
        assert driver.execute_script("return !!window.explorer"), console_errors(driver)
        assert (
            driver.execute_script("return document.querySelectorAll('#seed-features-table tr').length")
            == 1 + shown
        )
        size = driver.execute_script(
            "const i = document.getElementById('seed-features-figure'); return i.naturalWidth"
        )
        assert size > 0 and console_errors(driver) == []
    finally:
        driver.quit()


def test_sweep_page_without_or_with_a_broken_seed_features_file(tiny_sweep, tmp_path):
    import shutil

    from grok_lightning.explorer.sweep_page import sweep_payload

    copy = tmp_path / "copy"
    shutil.copytree(tiny_sweep, copy)
    for name in ("seed_features.json", "seed_features.png"):
        (copy / name).unlink(missing_ok=True)
    payload = sweep_payload(copy)
    assert payload["seed_features"] is None and not any("seed_features" in n for n in payload["notes"])
    (copy / "seed_features.json").write_text("{not json")
    payload = sweep_payload(copy)
    assert payload["seed_features"] is None and any("seed_features.json" in n for n in payload["notes"])


def test_budget_sets_the_fates_whatever_the_models_ran(tiny_sweep):
    """Solved at step 30 (the odd models): generalised within 31 steps, not within 30."""
    assert SF.main([str(tiny_sweep), "--steps", "10", "--budget=31"]) == 0
    result = json.loads((tiny_sweep / "seed_features.json").read_text())
    assert (result["budget"], result["generalised"]) == (31, 3)
    assert SF.main([str(tiny_sweep), "--budget", "30", "--steps", "10"]) == 0
    result = json.loads((tiny_sweep / "seed_features.json").read_text())
    assert (result["budget"], result["generalised"], result["not_generalised"]) == (30, 0, 6)
    assert result["verdict"].startswith("no comparison")


@pytest.mark.parametrize(
    "args, says",
    [
        (["{tmp}/nowhere"], "no such directory"),
        (["{tmp}"], "no sweep.yaml"),
        (["{tmp}", "--steps", "0"], "--steps"),
        (["{tmp}", "--steps"], "--steps"),
        (["{tmp}", "--budget=-5"], "--budget"),
        ([], "usage"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, says):
    assert SF.main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err


@pytest.mark.parametrize(
    "sweep_yaml, results, says",
    [
        ("task: modadd\nbase: [", None, "sweep.yaml"),
        ("task: modadd\n", None, "first_model_config"),
        ("task: parity\nfirst_model_config: {}\n", None, "not modular addition"),
        ("task: modadd\nfirst_model_config: {}\n", None, "no finished models"),
        ("task: modadd\nfirst_model_config: {}\n", "model_id,seed\nabc,0\n", "lack optim.lr"),
    ],
)
def test_unusable_sweep_directories_are_one_line_and_exit_2(tmp_path, capsys, sweep_yaml, results, says):
    (tmp_path / "sweep.yaml").write_text(sweep_yaml)
    if results:
        (tmp_path / "results.csv").write_text(results)
    assert SF.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err

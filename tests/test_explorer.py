"""The explorer: the trajectory written during training (continuous across an interrupt or a
divergence and its resume), the pages built from runs and sweeps, the command line, W&B, and the
pages themselves in a real headless Chromium (slider, play, clicks, the L / R thresholds)."""

import base64
import csv
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from grok_lightning import objectives, outcome
from grok_lightning.callbacks.trajectory import default_cadence, read_trajectory
from grok_lightning.explorer import PAGE_NAME, log_page_to_wandb, write_run_page, write_sweep_page
from grok_lightning.explorer.measure import browser_missing, console_errors, start_browser
from grok_lightning.module import build_module
from grok_lightning.train import main
from tests.conftest import (
    TINY_P13,
    callbacks_off,
    make_loss_nan_after,
    read_csv_rows,
    run_sweep_file,
    train_quietly,
)

PNG_OFF = callbacks_off("trajectory")  # every figure off; the page's frames stay
COMMON = ["logger=csv", "train.progress_bar=false", "model.init=torch", "train.max_steps=300", *PNG_OFF]
MODADD = [*TINY_P13, "train.checkpoint_every=100", "optim.lr=1e-2"]
FIXED = ["data.p=13", "model.n_neurons=5"]
PARITY = ["data.n_bits=12", "data.train_size=200", "data.test_size=200", "model.n_neurons=16"]
SHOTS = Path(os.environ.get("EXPLORER_SHOTS", "")) if os.environ.get("EXPLORER_SHOTS") else None


def run(root: Path, task: str, *extra: str) -> Path:
    return train_quietly(task, None, [f"run_root={root}", *COMMON, *extra])


@pytest.fixture(scope="module")
def modadd_run(tmp_path_factory):
    return run(tmp_path_factory.mktemp("modadd"), "modadd", *MODADD)


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory):
    return run(tmp_path_factory.mktemp("fixed"), "fixed_embed", *FIXED)


@pytest.fixture(scope="module")
def parity_run(tmp_path_factory):
    return run(tmp_path_factory.mktemp("parity"), "parity", *PARITY)


# ------------------------------------------------------------------------------------------ trajectory
def test_default_cadence_gives_at_least_100_frames():
    assert default_cadence(50_000, 10) == 500  # 100 frames on the main preset
    assert default_cadence(3_000, 10) == 30
    assert default_cadence(300, 10) == 10  # never finer than one training_step call


def test_trajectory_holds_the_collapsed_weights_at_its_cadence(modadd_run):
    traj = read_trajectory(modadd_run / "trajectory.npz")
    assert traj["steps"].tolist() == list(range(9, 300, 10))  # after 10, 20, ... updates
    assert traj["W_input"].shape == (30, 13, 6) and traj["W_output"].shape == (30, 6, 13)
    assert traj["W_input"].dtype == np.float32 and "W_input_b" not in traj  # tied input sides
    assert traj["meta"]["analyses"] == ["fourier", "heatmaps"] and traj["meta"]["activation"] == "relu"
    # the last frame is the model the last checkpoint holds
    cfg = OmegaConf.load(modadd_run / "config.yaml")
    _, module = build_module(cfg, [cfg.train.seed], [cfg.optim.lr], [cfg.optim.weight_decay])
    state = torch.load(modadd_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    W_in, _, W_out = module.model.collapsed()
    np.testing.assert_allclose(traj["W_input"][-1], W_in[0].detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(traj["W_output"][-1], W_out[0].detach().numpy(), rtol=1e-6, atol=1e-7)


class InterruptAt(L.Callback):
    """Sends this process SIGINT once training passes `step`: GracefulStop saves at that step."""

    def __init__(self, step: int):
        self.step, self.sent = step, False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


def assert_same_trajectory(a: Path, b: Path):
    ta, tb = read_trajectory(a / "trajectory.npz"), read_trajectory(b / "trajectory.npz")
    assert ta["steps"].tolist() == tb["steps"].tolist()
    np.testing.assert_array_equal(ta["W_input"], tb["W_input"])
    np.testing.assert_array_equal(ta["W_output"], tb["W_output"])


def test_interrupted_run_resumes_to_one_continuous_trajectory(modadd_run, tmp_path, monkeypatch):
    import grok_lightning.callbacks as cbs

    real = cbs.build_callbacks
    monkeypatch.setattr(cbs, "build_callbacks", lambda *a, **k: [*real(*a, **k), InterruptAt(150)])
    run_dir = run(tmp_path, "modadd", *MODADD)
    monkeypatch.setattr(cbs, "build_callbacks", real)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 150 <= summary["steps_trained"] < 300
    steps = read_trajectory(run_dir / "trajectory.npz")["steps"].tolist()
    assert steps == list(range(9, summary["steps_trained"], 10))  # up to the stop, no extra final frame
    assert main([f"resume={run_dir}"]) == 0
    assert_same_trajectory(run_dir, modadd_run)


def test_diverged_run_resumes_from_its_checkpoint_dropping_later_frames(modadd_run, tmp_path, monkeypatch):
    real_loss = make_loss_nan_after(monkeypatch, 237)
    run_dir = run(tmp_path, "modadd", *MODADD)
    monkeypatch.setattr(objectives.Multiclass, "loss", real_loss)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"
    # the file kept the frames up to the failure, past last.ckpt (step 200) ...
    path = run_dir / "trajectory.npz"
    with np.load(path) as z:
        saved = {name: z[name] for name in z.files}
    assert saved["steps"].tolist()[-1] == 229
    later = saved["steps"] >= 200
    saved["W_input"][later] = np.nan  # mark them: a resume must not keep what its checkpoint never saw
    np.savez(path, **saved)
    assert main([f"resume={run_dir}"]) == 0
    # ... and the resume dropped those, then took them again from the checkpoint's weights
    assert_same_trajectory(run_dir, modadd_run)


def test_resume_without_the_file_warns_of_a_gap(tmp_path, monkeypatch):
    import grok_lightning.callbacks as cbs

    real = cbs.build_callbacks
    monkeypatch.setattr(cbs, "build_callbacks", lambda *a, **k: [*real(*a, **k), InterruptAt(100)])
    run_dir = run(tmp_path, "modadd", *MODADD)
    monkeypatch.setattr(cbs, "build_callbacks", real)
    (run_dir / "trajectory.npz").unlink()
    with pytest.warns(UserWarning, match="gap"):
        assert main([f"resume={run_dir}"]) == 0
    assert read_trajectory(run_dir / "trajectory.npz")["steps"][0] > 100


def test_group_wave_fits_equal_frequency_group_waves_frame_by_frame():
    from grok_lightning import fourier as fo

    gen = torch.Generator().manual_seed(0)
    T, p, n = 3, 13, 7
    W_a, W_b = (
        torch.randn(T, p, n, generator=gen, dtype=torch.float64),
        torch.randn(T, p, n, generator=gen, dtype=torch.float64),
    )
    W_out = torch.randn(T, n, p, generator=gen, dtype=torch.float64)
    freqs = torch.tensor([1, 3, 3, 5, 1, 6, 3])
    groups = fo.group_by_frequency(freqs)
    fast = fo.group_wave_fits(W_a, W_b, W_out, torch.relu, groups)
    for t in range(T):
        for g, ref in enumerate(fo.frequency_group_waves(W_a[t], W_b[t], W_out[t], torch.relu, freqs)):
            torch.testing.assert_close(fast["wave"][t, g], ref["wave"])
            for key in ("offset", "amplitude", "phase", "r2"):
                assert float(fast[key][t, g]) == pytest.approx(ref[key], abs=1e-9), key


# ------------------------------------------------------------------------------------------ pages, no browser
def page_data(path: Path) -> dict:
    html = path.read_text()
    start = html.index('id="explorer-data">') + len('id="explorer-data">')
    return json.loads(html[start : html.index("</script>", start)])


def decoded(array: dict) -> np.ndarray:
    """A packed page array (grok_lightning.explorer._page.packed) back as numpy."""
    from grok_lightning.explorer._page import DTYPES

    return np.frombuffer(base64.b64decode(array["b64"]), dtype=DTYPES[array["dtype"]]).reshape(array["shape"])


def test_run_page_is_one_self_contained_file(modadd_run):
    path = write_run_page(modadd_run)
    html = path.read_text()
    assert path == modadd_run / PAGE_NAME
    for fetch in ("<script src", "<link", "fetch(", "XMLHttpRequest", "import(", "url("):
        assert fetch not in html
    data = page_data(path)
    assert data["kind"] == "run" and data["frames"]["count"] == 30
    assert {h["name"] for h in data["frames"]["heatmaps"]} == {"W_input", "W_output"}
    assert len(data["frames"]["fourier"]["groups"]) >= 1 and "circles" not in data["frames"]
    assert not list(modadd_run.glob(f".{PAGE_NAME}.*"))  # no temporary file left behind


def test_run_without_trajectory_gets_curves_and_a_note(modadd_run, tmp_path):
    old = tmp_path / "old_run"
    shutil.copytree(
        modadd_run, old, ignore=shutil.ignore_patterns("trajectory.npz", PAGE_NAME, "checkpoints")
    )
    data = page_data(write_run_page(old))
    assert data["frames"] is None and data["curves"] is not None
    assert any("no trajectory.npz" in n for n in data["notes"])


def test_milestones_come_from_the_summary_or_the_curves(modadd_run, tmp_path):
    summary = json.loads((modadd_run / "summary.json").read_text())
    data = page_data(write_run_page(modadd_run))
    assert data["milestones"]["memorise_step"] == summary["memorise_step"]
    bare = tmp_path / "bare"
    shutil.copytree(modadd_run, bare, ignore=shutil.ignore_patterns("summary.json", "checkpoints"))
    rows = read_csv_rows(bare / "metrics.csv")
    rows = [r for r in rows if r.get("train/acc")]
    expected = outcome.first_step_at_or_above(
        [int(r["step"]) for r in rows], [float(r["train/acc"]) for r in rows], 0.99
    )
    assert page_data(write_run_page(bare))["milestones"]["memorise_step"] == expected


def explorer_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "grok_lightning.explorer", *args], capture_output=True, text=True
    )


def test_cli_writes_the_page_and_names_it(modadd_run, capsys):
    from grok_lightning.explorer.__main__ import main as explore

    (modadd_run / PAGE_NAME).unlink(missing_ok=True)
    assert explore([str(modadd_run)]) == 0
    assert capsys.readouterr().out.strip() == f"explorer -> {modadd_run / PAGE_NAME}"
    assert (modadd_run / PAGE_NAME).is_file()


@pytest.mark.parametrize("what", ["empty", "missing", "bad_results"])
def test_cli_refuses_a_directory_that_is_neither_run_nor_sweep(tmp_path, what, capsys):
    from grok_lightning.explorer.__main__ import main as explore

    target = tmp_path / "x"
    if what != "missing":
        target.mkdir()
    if what == "bad_results":  # in this process: the subprocess would spend seconds importing torch
        (target / "results.csv").write_text("a,b\n1,2\n")
        code, stderr = explore([str(target)]), capsys.readouterr().err
    else:
        done = explorer_cli(str(target))
        code, stderr = done.returncode, done.stderr
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(target) in lines[0]
    assert not (target / PAGE_NAME).exists() and not list(tmp_path.rglob("*.html"))


def test_page_goes_into_an_offline_wandb_run(modadd_run, tmp_path, monkeypatch):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    page = write_run_page(modadd_run)
    assert log_page_to_wandb([CSVLogger(str(tmp_path))], page) is False  # no W&B run: nothing to do
    logger = WandbLogger(project="explorer-test", save_dir=str(tmp_path), mode="offline")
    try:
        assert log_page_to_wandb([CSVLogger(str(tmp_path)), logger], page) is True
    finally:
        logger.experiment.finish()
    (logged,) = list(tmp_path.glob("wandb/offline-run-*/files/media/html/explorer_*.html"))
    assert logged.read_text() == page.read_text()


# ------------------------------------------------------------------------------------------ a sweep
GRID = {"data.train_size": [500, 1000], "model.n_neurons": [16, 32], "optim.weight_decay": [0.01, 0.1, 1.0]}
SEEDS = [0, 1, 2]


def fake_histories(rng, n_models: int, T: int = 60):
    """Loss curves of every kind: fitted or not, generalising early, late or never, one NaN run,
    one with a zero train loss (an infinite ratio)."""
    steps = np.arange(T) * 10
    t = np.linspace(0, 1, T)[:, None]
    train_floor = 10.0 ** rng.uniform(-9, -1, n_models)
    test_floor = np.where(
        rng.random(n_models) < 0.4,
        10.0 ** rng.uniform(-9, -3, n_models),
        10.0 ** rng.uniform(-4, 0, n_models),
    )
    delay = rng.uniform(0, 1, n_models)
    train = 0.5 * (train_floor / 0.5) ** np.clip(t * 4, 0, 1)
    test = 0.5 * (test_floor / 0.5) ** np.clip((t - delay) / max(1e-3, 1 - delay.max()) * 2, 0, 1)
    train[:, 0], test[:, 1] = np.nan, np.nan
    train[T // 2 :, 2] = 0.0
    return steps, train.astype(np.float32), test.astype(np.float32)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A sweep directory in the format grok_lightning.sweep writes: results.csv, sweep.yaml, histories/."""
    out = tmp_path_factory.mktemp("sweep") / "fake"
    rng = np.random.default_rng(0)
    points = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    models = [(f"m{i:03d}", point, seed) for i, (point, seed) in enumerate(itertools.product(points, SEEDS))]
    steps, train, test = fake_histories(rng, len(models))
    rows = []
    for k, (model_id, point, seed) in enumerate(models):
        rows.append(
            {
                "model_id": model_id,
                **point,
                "optim.lr": 0.001,
                "seed": seed,
                "min_train_loss": float(np.nanmin(train[:, k].astype(np.float64), initial=np.inf)),
                "min_test_loss": float(np.nanmin(test[:, k].astype(np.float64), initial=np.inf)),
                "max_ratio": outcome.max_ratio(train[:, k].astype(np.float64), test[:, k].astype(np.float64)),
                "outcome": "",
                "diverged": k == 0,
            }
        )
    out.mkdir(parents=True)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    spec = {
        "task": "modadd",
        "description": "a fake sweep",
        "grid": GRID,
        "seeds": SEEDS,
        "phase_diagram": {"x": "optim.weight_decay", "y": "model.n_neurons"},
        "first_model_config": {"outcome": {"loss_threshold": 1e-5, "ratio_threshold": 5e4}},
    }
    (out / "sweep.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(spec)))
    names = ["train/loss", "train/acc", "test/loss", "test/acc"]
    values = np.stack([train, np.zeros_like(train), test, np.zeros_like(test)], -1)  # [T, K, M]
    half = len(models) // 2
    (out / "histories").mkdir()
    for b, part in enumerate((slice(0, half), slice(half, None))):  # two batches
        ids = [m[0] for m in models[part]]
        np.savez(
            out / "histories" / f"b{b}.npz",
            model_ids=np.asarray(ids, dtype=str),
            steps=steps.astype(np.int64),
            metric_names=np.asarray(names, dtype=str),
            values=values[:, part].astype(np.float32),
            neuron_frequency=rng.integers(1, 7, size=(len(ids), 6)).astype(np.int16),
        )
    return out, train, test


def test_sweep_page_lays_out_one_square_per_model(sweep_dir):
    out, _, _ = sweep_dir
    data = page_data(write_sweep_page(out))
    assert data["kind"] == "sweep" and len(data["models"]["id"]) == 36
    assert data["axes"]["x"]["values"] == ["0.01", "0.1", "1"] and data["axes"]["y"]["values"] == ["16", "32"]
    assert data["axes"]["panels"] == ["train_size=500", "train_size=1000"]
    assert len(data["cells"]) == 12 and Counter(data["models"]["cell"]) == {c: 3 for c in range(12)}
    assert data["freqs"] is not None and data["curves"] is not None


def test_sweep_page_carries_the_rules_numbers_at_every_logged_step(sweep_dir):
    out, train, test = sweep_dir
    data = page_data(write_sweep_page(out))
    at = data["at_steps"]
    steps = np.arange(train.shape[0]) * 10  # fake_histories' logged steps: fewer than STEP_CUTS, all kept
    assert decoded(at["steps"]).tolist() == steps.tolist()
    n = len(steps)
    numbers = {name: decoded(at[name]).reshape(-1, n) for name in ("min_train", "min_test", "max_ratio")}
    for k in range(train.shape[1]):
        for cut in (0, 1, 17, n // 2, n - 1):
            a, b = train[: cut + 1, k].astype(np.float64), test[: cut + 1, k].astype(np.float64)
            assert numbers["min_train"][k, cut] == np.nanmin(a, initial=np.inf), (k, cut)
            assert numbers["min_test"][k, cut] == np.nanmin(b, initial=np.inf), (k, cut)
            assert numbers["max_ratio"][k, cut] == outcome.max_ratio(a, b), (k, cut)


REAL_SWEEP = """\
task: modadd
base:
  data: {p: 11, train_fraction: 0.5}
  model: {d_embed: 8, init: torch}
  optim: {lr: 1.0e-2}
  train: {max_steps: 100}
  logger: csv
grid:
  model.n_neurons: [4, 8]
  optim.weight_decay: [0.1, 1.0]
seeds: 2
calibration: {enabled: false}
"""


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    """A real mini sweep (grok_lightning.sweep): results.csv, sweep.yaml and histories/ as written."""
    return run_sweep_file(tmp_path_factory.mktemp("real_sweep"), "mini", REAL_SWEEP)


def test_real_sweep_page_has_every_model_its_curves_and_frequencies(real_sweep):
    rows = read_csv_rows(real_sweep / "results.csv")
    data = page_data(write_sweep_page(real_sweep))
    assert data["models"]["id"] == [r["model_id"] for r in rows]
    assert len(data["cells"]) == 4 and data["axes"]["x"]["key"] == "model.n_neurons"
    assert all(s >= 0 for s in data["curves"]["set_of"])  # every model's history was found
    n_neurons = [int(r["model.n_neurons"]) for r in rows]
    assert [sum(c for _, c in f) for f in data["freqs"]] == n_neurons  # each neuron has one frequency


# ------------------------------------------------------------------------------------------ in the browser
@pytest.fixture(scope="module")
def browser():
    reason = browser_missing()
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    driver = start_browser()
    yield driver
    driver.quit()


def load(driver, path: Path, shot: str):
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return !!window.explorer"), console_errors(driver)
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / f"{shot}.png"))


def pixels(driver, canvas_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{canvas_id}').toDataURL()")


def set_frame_with_keyboard(driver, key):
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "frame").send_keys(key)


def no_errors_and_nothing_fetched(driver):
    assert console_errors(driver) == []
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_modadd_page_slider_drives_every_panel(browser, modadd_run):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    load(browser, write_run_page(modadd_run), "modadd_run")
    ids = ["heat-W_input", "heat-W_output", "dft-in", "dft-out", "curve-loss", "curve-acc", "sparsity-curve"]
    first_group = page_data(modadd_run / PAGE_NAME)["frames"]["fourier"]["groups"][0]["freq"]
    ids += [f"star-{first_group}-in", f"star-{first_group}-out", f"wave-{first_group}"]
    before = {i: pixels(browser, i) for i in ids}
    marker = browser.find_element(By.ID, "curve-loss").get_attribute("data-marker-step")
    set_frame_with_keyboard(browser, Keys.END)
    assert browser.execute_script("return window.explorer.frame()") == 29
    changed = {i for i in ids if pixels(browser, i) != before[i]}
    assert changed == set(ids)
    assert (marker, browser.find_element(By.ID, "curve-loss").get_attribute("data-marker-step")) == (
        "9",
        "299",
    )
    assert "step 299" in browser.find_element(By.ID, "readout").text

    # a click on a curve moves the slider to the frame nearest the clicked step
    steps = browser.execute_script("return window.explorer.steps")
    curve = browser.find_element(By.ID, "curve-loss")
    x = browser.execute_script("return window.explorer.curvePx(arguments[0])", steps[12])
    ActionChains(browser).move_to_element_with_offset(
        curve, int(round(x - curve.size["width"] / 2)), 0
    ).click().perform()
    assert browser.execute_script("return window.explorer.frame()") == 12
    assert browser.find_element(By.ID, "frame").get_attribute("value") == "12"

    # the toggles redraw: neurons in frequency order, one colour scale per frame
    for toggle in ("sort-by-frequency", "per-frame-scale"):
        before_toggle = pixels(browser, "heat-W_input")
        browser.find_element(By.ID, toggle).click()
        assert pixels(browser, "heat-W_input") != before_toggle, toggle

    # play runs through the frames, pause stops
    set_frame_with_keyboard(browser, Keys.HOME)
    browser.find_element(By.ID, "play").click()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return window.explorer.frame()") >= 3)
    browser.find_element(By.ID, "play").click()
    stopped = browser.execute_script("return window.explorer.frame()")
    browser.execute_script("return new Promise(r => setTimeout(r, 300))")
    assert browser.execute_script("return window.explorer.frame()") == stopped
    no_errors_and_nothing_fetched(browser)


def test_fixed_embed_page_moves_the_neurons_on_their_circles(browser, fixed_run):
    from selenium.webdriver.common.keys import Keys

    data = page_data(write_run_page(fixed_run))
    assert data["frames"]["circles"]["freqs"] == [1]
    load(browser, fixed_run / PAGE_NAME, "fixed_embed_run")
    ids = ["circle-1-in", "circle-1-out", "heat-W_input"]
    before = {i: pixels(browser, i) for i in ids}
    set_frame_with_keyboard(browser, Keys.END)
    assert {i for i in ids if pixels(browser, i) != before[i]} == set(ids)
    no_errors_and_nothing_fetched(browser)


def test_parity_page_shows_bits_and_the_distractor_share(browser, parity_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    data = page_data(write_run_page(parity_run))
    assert "fourier" not in data["frames"] and data["frames"]["distractor"]["n_bits"] == 12
    assert data["frames"]["heatmaps"][0]["matrix"]["shape"] == [30, 13, 16]  # 12 bits + bias row
    load(browser, parity_run / PAGE_NAME, "parity_run")
    assert browser.find_elements(By.ID, "dft-in") == []
    before = {i: pixels(browser, i) for i in ("heat-W_input", "heat-W_output", "distractor")}
    set_frame_with_keyboard(browser, Keys.END)
    assert {i for i in before if pixels(browser, i) != before[i]} == set(before)
    assert browser.find_element(By.ID, "distractor").get_attribute("data-marker-step") == "299"
    no_errors_and_nothing_fetched(browser)


def test_page_without_frames_loads_cleanly(browser, modadd_run, tmp_path):
    from selenium.webdriver.common.by import By

    old = tmp_path / "old_run"
    shutil.copytree(
        modadd_run, old, ignore=shutil.ignore_patterns("trajectory.npz", PAGE_NAME, "checkpoints")
    )
    load(browser, write_run_page(old), "run_without_trajectory")
    assert "no trajectory.npz" in browser.find_element(By.CLASS_NAME, "note").text
    assert browser.find_elements(By.ID, "curve-loss") and not browser.find_elements(By.ID, "frame")
    no_errors_and_nothing_fetched(browser)


def python_counts(train, test, L, R) -> dict:
    classes = Counter(
        outcome.outcome_class(train[:, k].astype(np.float64), test[:, k].astype(np.float64), L, R)
        for k in range(train.shape[1])
    )
    return {o: classes.get(o, 0) for o in outcome.OUTCOMES}


def test_sweep_thresholds_reclassify_exactly_as_python(browser, sweep_dir):
    out, train, test = sweep_dir
    load(browser, write_sweep_page(out), "sweep")
    page = browser.execute_script("return window.explorer.counts()")
    assert page == python_counts(train, test, 1e-5, 5e4)  # the sweep's own thresholds at load
    seen = set()
    for log_l, log_r in ((-5, 4.69897), (-2, 2), (-8, 8), (-3, 0.5), (0, 0), (-6.5, 3.25)):
        browser.execute_script(
            """for (const [id, v] of [['loss-threshold', arguments[0]], ['ratio-threshold', arguments[1]]]) {
                 const s = document.getElementById(id); s.value = String(v);
                 s.dispatchEvent(new Event('input', {bubbles: true})); }""",
            log_l,
            log_r,
        )
        th = browser.execute_script("return window.explorer.thresholds()")
        assert th["L"] == pytest.approx(10.0**log_l, rel=1e-9)
        page = browser.execute_script("return window.explorer.counts()")
        assert page == python_counts(train, test, th["L"], th["R"]), (log_l, log_r)
        seen.add(tuple(page.values()))
    assert len(seen) >= 4  # the thresholds really changed the classes
    no_errors_and_nothing_fetched(browser)


def test_sweep_step_slider_reclassifies_as_python_on_the_history_so_far(browser, sweep_dir):
    out, train, test = sweep_dir
    load(browser, write_sweep_page(out), "sweep_steps")
    steps = np.arange(train.shape[0]) * 10
    assert browser.execute_script("return window.explorer.step()") == steps[-1]  # the end at load
    seen = set()
    for cut in (0, 5, 20, 31, 45, len(steps) - 1):
        browser.execute_script(
            """const s = document.getElementById('step'); s.value = String(arguments[0]);
               s.dispatchEvent(new Event('input', {bubbles: true}));""",
            cut,
        )
        assert browser.execute_script("return window.explorer.step()") == steps[cut]
        page = browser.execute_script("return window.explorer.counts()")
        assert page == python_counts(train[: cut + 1], test[: cut + 1], 1e-5, 5e4), cut
        seen.add(tuple(page.values()))
    assert len(seen) >= 3  # the classes really moved with the step
    no_errors_and_nothing_fetched(browser)


def test_sweep_cell_click_shows_its_models(browser, sweep_dir):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    out, _, _ = sweep_dir
    load(browser, write_sweep_page(out), "sweep_cell")
    target = 7
    point = browser.execute_script("return window.explorer.cellPoint(arguments[0])", target)
    canvas = browser.find_element(By.ID, point["id"])
    dx, dy = point["x"] - canvas.size["width"] / 2, point["y"] - canvas.size["height"] / 2
    before = pixels(browser, point["id"])
    ActionChains(browser).move_to_element_with_offset(canvas, int(dx), int(dy)).click().perform()
    assert browser.execute_script("return window.explorer.selected()") == target
    assert pixels(browser, point["id"]) != before  # the selection outline moved
    detail = browser.find_element(By.ID, "cell-detail")
    assert detail.get_attribute("data-cell") == str(target) and detail.get_attribute("data-models") == "3"
    assert browser.find_element(By.ID, "cell-curves").get_attribute("data-series") == "6"  # train + test each
    assert len(browser.find_elements(By.CSS_SELECTOR, "#cell-models tr")) == 1 + 3
    assert browser.find_element(By.ID, "cell-frequencies").text.startswith("frequencies held by most models")
    no_errors_and_nothing_fetched(browser)


def test_real_sweep_page_classes_match_the_sweeps_own(browser, real_sweep):
    rows = read_csv_rows(real_sweep / "results.csv")
    load(browser, write_sweep_page(real_sweep), "real_sweep")
    assert browser.execute_script("return window.explorer.classes()") == [r["outcome"] for r in rows]
    no_errors_and_nothing_fetched(browser)

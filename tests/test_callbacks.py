"""Each analysis callback on a short real run: its scalars in metrics.csv, its PNGs under figures/,
its images in the offline W&B run; switched off, no figures at all; the parity pieces on a stub."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from grok_lightning import config as C
from grok_lightning.callbacks import BitMass, WeightHeatmaps, build_callbacks
from tests.conftest import TINY, callbacks_off, metrics_rows, train_quietly

# Narrow (32 wide, not 500) but the main preset's p = 67 and 24 neurons: the figures have something to show.
SHORT = [
    "model.d_embed=32",
    "model.init=torch",
    "train.max_steps=200",
    "train.progress_bar=false",
    "train.precision=32",
]
CADENCE = [
    "callbacks.dft_sparsity.scalars_every=50",
    "callbacks.dft_sparsity.frames_every=200",
    "callbacks.weight_heatmaps.frames_every=200",
    "callbacks.loss_gap.scalars_every=50",
    "callbacks.progress_measures.scalars_every=50",
]
FINALS = {"curves", "dft_final", "sparsity", "progress", "stars", "logit_waves", "weights_final"}


def short_run(root: Path, *extra: str) -> Path:
    return train_quietly("modadd", "main", [*SHORT, f"run_root={root}", *extra])


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory):
    old = {k: os.environ.get(k) for k in ("WANDB_MODE", "WANDB_SILENT")}
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    try:
        yield short_run(tmp_path_factory.mktemp("runs"), "logger=wandb", *CADENCE)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_scalars_land_in_metrics_csv_at_their_cadence(wandb_run):
    rows = metrics_rows(wandb_run)
    by_name = {}
    for row in rows:
        for name, value in row.items():
            if value and name != "step":
                by_name.setdefault(name, []).append(int(float(row["step"])))
    for name in (
        "fourier/in_gini",
        "fourier/out_gini",
        "fourier/in_top5_energy",
        "fourier/in_n_key_freqs",
        "fourier/in_ipr",
        "progress/restricted_loss",
        "progress/excluded_loss",
        "gap/ratio",
        "gap/max_ratio",
    ):
        assert name in by_name, name
    # first batch, every 50 steps, last step; labelled as the module labels its steps (after update s)
    assert by_name["fourier/in_gini"] == [9, 49, 99, 149, 199]
    assert by_name["progress/restricted_loss"] == [9, 49, 99, 149, 199]
    for row in rows:
        if row.get("fourier/in_gini"):
            assert 0 <= float(row["fourier/in_gini"]) <= 1
            assert 0 < float(row["fourier/in_top5_energy"]) <= 1


def test_pngs_are_written(wandb_run):
    fig_dir = wandb_run / "figures"
    assert {p.stem for p in fig_dir.glob("*.png")} == FINALS
    assert sorted(p.name for p in (fig_dir / "weights").glob("*.png")) == [
        "step_0000009.png",
        "step_0000199.png",
    ]
    assert len(list((fig_dir / "dft").glob("*.png"))) == 2
    for png in fig_dir.rglob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000


def test_summary_gets_the_analysis(wandb_run):
    import json

    summary = json.loads((wandb_run / "summary.json").read_text())
    assert set(summary["callback_seconds"]) == {
        "loss_gap",
        "dft_sparsity",
        "progress_measures",
        "fourier_stars",
        "weight_heatmaps",
        "trajectory",
    }
    assert len(summary["neuron_frequency"]) == 24
    assert sum(len(v) for v in summary["frequency_groups"].values()) == 24
    assert set(summary["final_sparsity"]) >= {"in_gini", "out_gini", "in_top5_energy"}
    assert isinstance(summary["key_frequencies"], list)
    assert set(summary["progress"]) >= {"restricted_loss", "excluded_loss"}


def test_images_reach_the_offline_wandb_run(wandb_run):
    offline = list((wandb_run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    media = offline[0] / "files" / "media" / "images" / "figures"
    names = [p.name for p in media.glob("*.png")]
    for key in ("weights", "dft", "curves", "sparsity", "progress", "stars", "logit_waves"):
        assert any(n.startswith(f"{key}_") for n in names), (key, names)
    assert sum(n.startswith("weights_") and not n.startswith("weights_final") for n in names) == 2


def test_callbacks_off_write_no_figures(tmp_path):
    overrides = [*TINY, "train.max_steps=200", "train.precision=32", "train.progress_bar=false", "logger=csv"]
    overrides += callbacks_off()
    run_dir = train_quietly("modadd", "main", [*overrides, f"run_root={tmp_path}"])
    assert not (run_dir / "figures").exists()
    assert not any("fourier/" in k for k in metrics_rows(run_dir)[0])


def test_build_callbacks_asks_the_task_not_its_name():
    cfg = C.load("modadd", "main", SHORT)
    fourier_only = SimpleNamespace(analyses=frozenset({"fourier"}))
    names = {type(cb).__name__ for cb in build_callbacks(cfg, fourier_only, None)}
    assert names == {"LossGap", "DFTSparsity", "ProgressMeasures", "FourierStars"}
    parity_like = SimpleNamespace(analyses=frozenset({"heatmaps", "bit_mass"}))
    names = {type(cb).__name__ for cb in build_callbacks(cfg, parity_like, None)}
    assert names == {"LossGap", "WeightHeatmaps", "BitMass", "Trajectory"}
    cfg.callbacks.bit_mass.enabled = False
    assert "BitMass" not in {type(cb).__name__ for cb in build_callbacks(cfg, parity_like, None)}
    assert "BitMass" in {
        type(cb).__name__ for cb in build_callbacks(cfg, parity_like, None, include_disabled=True)
    }


def test_parity_bit_mass_and_heatmap_on_a_stub(tmp_path):
    """The parity model is another developer's: a stub with its declared API (W_input [K, 31, n],
    W_output [K, n, 1], cfg.data.k) stands in for it."""
    cfg = OmegaConf.create(
        {
            "task": "parity",
            "preset": "x",
            "data": {"k": 3},
            "train": {"max_steps": 100, "steps_per_call": 10},
            "outcome": {"loss_threshold": 1e-5, "ratio_threshold": 5e4},
        }
    )
    task = SimpleNamespace(analyses=frozenset({"heatmaps", "bit_mass"}))
    g = torch.Generator().manual_seed(0)  # fixed weights: the shares below depend on the draw
    W_in = torch.randn(1, 31, 16, generator=g)
    model = SimpleNamespace(W_input=W_in, W_output=torch.randn(1, 16, 1, generator=g))
    module = SimpleNamespace(model=model, history_tensor=lambda: ([], torch.empty(0, 1, 7)))
    bits, heat = BitMass(cfg, task, tmp_path), WeightHeatmaps(cfg, task, tmp_path)
    bits.record(module, 0)
    W_in[:, 3:30] *= 0.01  # distractor weights fade
    bits.record(module, 99)
    heat.draw_frames(module, 99)
    bits.finish(module, 99)
    assert bits.series["mass_first_k"][0] == pytest.approx(0.1, abs=0.06)
    assert bits.series["mass_first_k"][1] > 0.9
    assert (tmp_path / "figures" / "bit_mass.png").is_file()
    assert (tmp_path / "figures" / "weights" / "step_0000099.png").is_file()

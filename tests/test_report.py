"""`python -m grok_lightning.report <run_dir>` re-renders a finished run's figures from its files."""

import shutil
import subprocess
import sys

import pytest
import torch
from rich.console import Console

from grok_lightning import config as C
from grok_lightning import report
from grok_lightning.train import train

SHORT = [
    "model.d_embed=32",
    "model.init=torch",
    "train.max_steps=100",
    "train.progress_bar=false",
    "train.precision=32",
    "logger=csv",
    "train.checkpoint_every=50",
]
ALL_OFF = C.callback_switches(False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run trained with every callback switched off: the report must still draw everything."""
    torch.set_num_threads(1)
    cfg = C.load(
        "modadd",
        "main",
        [
            *SHORT,
            f"run_root={tmp_path_factory.mktemp('runs')}",
            *ALL_OFF,
            "callbacks.weight_heatmaps.frames_every=50",
            "train.keep_checkpoints=-1",  # the report draws frames at the checkpoints kept
        ],
    )
    return train(cfg, console=Console(quiet=True))


def test_report_renders_every_figure_without_training(finished_run):
    assert not (finished_run / "figures").exists()
    lines = []
    written = report.render(finished_run, log=lines.append)
    fig_dir = finished_run / "figures"
    assert {p.stem for p in fig_dir.glob("*.png")} == {
        "curves",
        "dft_final",
        "sparsity",
        "progress",
        "stars",
        "logit_waves",
        "weights_final",
    }
    # frames at the checkpoints on the image cadence (50: steps 50 and 100 -> labels 49, 99)
    assert sorted(p.name for p in (fig_dir / "weights").glob("*.png")) == [
        "step_0000049.png",
        "step_0000099.png",
    ]
    assert len(written) == len(list(fig_dir.rglob("*.png")))
    assert any("key frequencies" in line for line in lines)


@pytest.mark.parametrize("case", ["missing", "not_a_run", "no_checkpoints", "bad_checkpoint", "wrong_model"])
def test_bad_run_dir_is_one_error_line_exit_2_nothing_written(finished_run, tmp_path, case, capsys):
    target = tmp_path / "run"
    if case == "not_a_run":
        target.mkdir()
    elif case != "missing":
        shutil.copytree(finished_run, target, ignore=shutil.ignore_patterns("figures", "checkpoints"))
        (target / "checkpoints").mkdir()
        if case == "bad_checkpoint":
            (target / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
        if case == "wrong_model":  # a checkpoint of another width
            shutil.copy(finished_run / "checkpoints" / "last.ckpt", target / "checkpoints" / "last.ckpt")
            text = (target / "config.yaml").read_text().replace("d_embed: 32", "d_embed: 16")
            (target / "config.yaml").write_text(text)
    before = sorted(tmp_path.rglob("*"))
    assert report.main([str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    assert sorted(tmp_path.rglob("*")) == before


def test_cli_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "grok_lightning.report", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'}: no such directory"]

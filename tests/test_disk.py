"""A run's disk: one copy of each checkpoint (last.ckpt and its step file are one inode), W&B's
offline copies of figures and the page linked to the run directory's files, heatmap frames in
int8. Sizes of default runs are measured in README ("On disk"), not asserted here."""

import base64
import os

import numpy as np
import pytest

from grok_lightning import runs
from grok_lightning.explorer._page import packed
from tests.conftest import TINY, only_run


def decode(a: dict) -> np.ndarray:
    """The page's JS decode() of a q1 array, in numpy."""
    q = np.frombuffer(base64.b64decode(a["b64"]), dtype=np.int8).reshape(a["shape"]).astype(np.float32)
    return q * np.asarray(a["scale"], np.float32).reshape((-1,) + (1,) * (q.ndim - 1)) / 127


def test_q1_keeps_each_frame_within_half_a_level_of_its_largest_weight():
    rng = np.random.default_rng(0)
    frames = (
        rng.normal(size=(5, 7, 3)).astype(np.float32)
        * np.array([1e-3, 1, 10, 0, 1], np.float32)[:, None, None]
    )
    got = decode(packed(frames, "q1"))
    scale = np.abs(frames).reshape(5, -1).max(1)
    assert np.all(np.abs(got - frames).reshape(5, -1).max(1) <= np.where(scale > 0, scale, 1) / 254 + 1e-12)
    assert np.all(got[3] == 0)  # an all-zero frame stays zero (no 0/0)
    assert len(base64.b64decode(packed(frames, "q1")["b64"])) == frames.size  # a byte a weight
    diverged = frames.copy()
    diverged[1, 0, :] = [np.inf, -np.inf, np.nan]
    got = decode(packed(diverged, "q1"))
    assert np.abs(got[1]).max() <= 1.0 and got[1, 0, 2] == 0  # clipped to the frame's unit scale


def test_atomic_link_shares_the_bytes_or_copies_where_links_fail(tmp_path, monkeypatch):
    src = tmp_path / "last.ckpt"
    src.write_bytes(b"weights")
    runs.atomic_link(src, tmp_path / "step=10.ckpt")
    assert os.path.samefile(src, tmp_path / "step=10.ckpt")
    src.unlink()  # a rewrite of last.ckpt replaces it: the step file keeps its bytes
    assert (tmp_path / "step=10.ckpt").read_bytes() == b"weights"

    def no_links(*args):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    runs.atomic_link(tmp_path / "step=10.ckpt", tmp_path / "copy.ckpt")
    assert (tmp_path / "copy.ckpt").read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.ckpt", "step=10.ckpt"]  # no temporary left


def test_link_copies_links_equal_bytes_only(tmp_path):
    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "stars.png").write_bytes(b"png-1")
    (run / "figures" / "dft.png").write_bytes(b"png-2")
    media = run / "wandb" / "files" / "media"
    media.mkdir(parents=True)
    (media / "stars_10_abc.png").write_bytes(b"png-1")  # W&B's copy
    (media / "older_5_def.png").write_bytes(b"png-3")  # an earlier figure the run dir no longer has
    (media / "same_size.png").write_bytes(b"png-9")  # same size as two originals, other bytes
    assert runs.link_copies(run / "wandb", run) == 5
    assert os.path.samefile(media / "stars_10_abc.png", run / "figures" / "stars.png")
    assert (media / "older_5_def.png").stat().st_nlink == 1
    assert (media / "same_size.png").read_bytes() == b"png-9"
    assert runs.link_copies(run / "wandb", run) == 0  # linked already


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory):
    from grok_lightning.train import main

    root = tmp_path_factory.mktemp("runs")
    args = [
        "task=modadd",
        f"run_root={root}",
        "logger=wandb",
        "train.progress_bar=false",
        *TINY,
        "train.max_steps=60",
    ]
    assert main([*args, "train.checkpoint_every=20", "train.keep_checkpoints=2"]) == 0
    return only_run(root)


def test_a_step_checkpoint_saved_with_last_ckpt_is_the_same_file(wandb_run):
    folder = wandb_run / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "step=40.ckpt", "step=60.ckpt"]
    assert os.path.samefile(folder / "last.ckpt", folder / "step=60.ckpt")
    assert not os.path.samefile(folder / "step=40.ckpt", folder / "step=60.ckpt")


def test_wandb_offline_media_are_links_to_the_run_directory_files(wandb_run):
    (files,) = (wandb_run / "wandb").glob("offline-run-*/files")
    media = [p for p in (files / "media").rglob("*") if p.is_file()]
    pages = [p for p in media if p.suffix == ".html"]
    assert pages and os.path.samefile(pages[0], wandb_run / "explorer.html")
    figures = {p.name for p in (wandb_run / "figures").rglob("*.png")}
    linked = [p for p in media if p.suffix == ".png" and p.stat().st_nlink > 1]
    assert figures and len(linked) >= len(figures) // 2, (len(linked), sorted(figures))

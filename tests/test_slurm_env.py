"""Under SLURM, Lightning's auto-requeue stays off and a sweep batch's trainer never uses the submit
directory as its root (a leftover hpc_ckpt_*.ckpt there was loaded into another batch: found with
a real one-node cluster, tests/test_cluster.py)."""

from pathlib import Path

from grok_lightning import config as C
from tests.conftest import TINY

SLURM = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "grok-sweep", "SLURM_JOB_ID": "42", "SLURM_PROCID": "0"}
SLURM |= {"SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NTASKS_PER_NODE": "1"}


def _trainer(run_dir):
    from grok_lightning.trainer import build_trainer

    cfg = C.load("modadd", None, [*TINY, "train.progress_bar=false"])
    return build_trainer(cfg, run_dir, [], False)


def test_under_slurm_no_auto_requeue_and_no_submit_dir_root(monkeypatch, tmp_path):
    for key, value in SLURM.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    from lightning.fabric.plugins.environments import SLURMEnvironment

    batch = _trainer(None)
    env = batch._accelerator_connector.cluster_environment
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue is False
    root = Path(batch.default_root_dir)
    assert root != tmp_path and root.is_dir() and not any(root.iterdir())
    assert Path(_trainer(tmp_path / "run").default_root_dir) == tmp_path / "run"


def test_outside_slurm_the_trainer_is_as_before(monkeypatch, tmp_path):
    for key in SLURM:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    assert Path(_trainer(None).default_root_dir) == tmp_path  # Lightning's default: the cwd

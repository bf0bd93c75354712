"""The wheel works away from the checkout: it carries the configs, presets and sweep files, leaves
benchmarks/ out, and trains a run from an unrelated directory in a fresh venv that sees the
dependencies of .venv but not its editable install of grok_lightning."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TINY, callbacks_off

ROOT = Path(__file__).resolve().parents[1]


# Build outputs and local state: a build from a copy without them cannot pick up stale files
# (setuptools reuses build/lib), and leaves nothing behind in the checkout.
ANYWHERE = shutil.ignore_patterns(".*", "__pycache__", "*.egg-info")
AT_ROOT = shutil.ignore_patterns("build", "dist", "runs*", "sweeps", "wandb", "ensembles", "construct")


def not_sources(folder: str, names: list) -> set:
    ignored = ANYWHERE(folder, names)
    return ignored | AT_ROOT(folder, names) if Path(folder) == ROOT else ignored


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source, out = tmp / "source", tmp / "dist"
    shutil.copytree(ROOT, source, ignore=not_sources)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
        str(source),
    ]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "PIP_NO_INDEX": "1"})
    (path,) = out.glob("grok_lightning-*.whl")
    return path


def test_wheel_holds_every_config_and_package_but_no_benchmarks(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = [p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").rglob("*.yaml")]
    assert {"modadd.yaml", "presets/modadd/main.yaml", "sweeps/parity_phase.yaml"} <= set(configs)
    assert not [c for c in configs if f"grok_lightning/configs/{c}" not in names]
    # every package of the checkout, the callbacks/ folder included, is in the wheel
    packages = [p.parent.relative_to(ROOT) for p in (ROOT / "grok_lightning").rglob("__init__.py")]
    expected = [p.as_posix() for p in packages] + ["grok_lightning/callbacks"]
    assert not [p for p in expected if f"{p}/__init__.py" not in names]
    assert not [n for n in names if n.startswith("benchmarks/") or "bench" in n.rsplit("/", 1)[-1]]


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A venv without pip or grok_lightning; a .pth file names .venv's site-packages, whose own .pth
    files (the editable finder among them) Python does not process from there."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "deps_from_dot_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _python(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GROK_CONFIG_DIR", "PYTHONPATH")}
    return subprocess.run([python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_installed_wheel_trains_from_another_directory(wheel, fresh_venv, tmp_path):
    python = fresh_venv
    site = Path(
        _python(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])", tmp_path).stdout.strip()
    )
    # the dependencies are seen, the editable checkout is not
    assert _python(python, "import torch, lightning, omegaconf", tmp_path).returncode == 0
    missing = _python(python, "import grok_lightning", tmp_path)
    assert "No module named 'grok_lightning'" in missing.stderr

    # --target: pip puts the files there and never touches .venv's editable install
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--target",
        str(site),
        str(wheel),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    where = _python(
        python, "import grok_lightning.config as C; print(C.__file__); print(C.CONFIG_DIR)", tmp_path
    )
    module_file, config_dir = map(Path, where.stdout.split())
    assert module_file.is_relative_to(site) and config_dir == site / "grok_lightning" / "configs"

    work = tmp_path / "elsewhere"
    work.mkdir()
    overrides = [*TINY, "train.max_steps=40", "logger=csv", "train.progress_bar=false", *callbacks_off()]
    train = subprocess.run(
        [python, "-m", "grok_lightning.train", "task=modadd", *overrides],
        cwd=work,
        env={k: v for k, v in os.environ.items() if k != "GROK_CONFIG_DIR"} | {"WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    (metrics,) = (work / "runs" / "modadd").glob("*/metrics.csv")
    assert len(metrics.read_text().splitlines()) > 1  # a header and logged steps

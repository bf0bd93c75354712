"""Reading a run directory's files back: config.yaml (validated against the task's schema),
metrics.csv (also as runs before the metric rename wrote it) and the checkpoints by step. No
Lightning here; torch only to open a checkpoint."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from grok_lightning import config as C
from grok_lightning import runs

# Runs written before grok_lightning 0.2 logged the test set as val/*.
OLD_NAMES = {"val/loss": "test/loss", "val/acc": "test/acc"}


class RunError(ValueError):
    """A run directory (or one of its files) that cannot be read: the message is one line."""


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_config(run_dir: Path) -> DictConfig:
    """config.yaml merged over its task's schema and validated, as the run was trained."""
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: {'not a directory' if run_dir.exists() else 'no such directory'}")
    if not runs.is_run_dir(run_dir):
        raise RunError(f"{run_dir}: not a run directory (no config.yaml)")
    try:
        saved = OmegaConf.load(run_dir / "config.yaml")
    except Exception as exc:  # yaml errors come in many classes
        raise RunError(f"{run_dir}/config.yaml: {first_line(exc)}") from None
    return config_from(saved, f"{run_dir}/config.yaml")


def config_from(saved, source: str) -> DictConfig:
    """A saved config (DictConfig or YAML text) merged over its task's schema and validated."""
    from grok_lightning.tasks import TASKS

    try:
        if isinstance(saved, str):
            saved = OmegaConf.create(saved)
        task = saved.get("task") if isinstance(saved, DictConfig) else None
        if task not in TASKS:
            raise RunError(f"{source} names unknown task {task!r}")
        cfg = C.over_schema(task, saved, source)
        OmegaConf.resolve(cfg)  # train writes no interpolation: one fails here, not in a later read
    except C.ConfigError as exc:  # a value check names the key only: add the file
        raise RunError(str(exc) if source in str(exc) else f"{source}: {exc}") from None
    except OmegaConfBaseException as exc:
        raise RunError(f"{source}: {C._one_line(exc)}") from None
    return cfg


def read_metrics_table(path: Path) -> tuple[list[str], list[dict]]:
    """(column names, rows) of metrics.csv with old val/* columns named test/*; ([], []) if absent."""
    if not path.is_file():
        return [], []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = [{OLD_NAMES.get(k, k): v for k, v in row.items()} for row in reader]
            names = [OLD_NAMES.get(k, k) for k in reader.fieldnames or []]
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: unreadable ({first_line(exc)})") from None
    return names, rows


def complete_csv(path: Path) -> tuple[list[str], list[dict]]:
    """(header, rows) of a CSV file as written so far, without a last line that a kill cut short
    (no newline yet); ([], []) if absent. Column names as written (no renaming)."""
    if not path.is_file():
        return [], []
    try:
        text = path.read_text()
        reader = csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1]))
        rows = list(reader)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: unreadable ({first_line(exc)})") from None
    if any(None in row for row in rows):  # DictReader's key for fields past the header
        raise RunError(f"{path}: a row has more fields than its header")
    return list(reader.fieldnames or []), rows


def read_summary(run_dir: Path) -> dict | None:
    """summary.json as a mapping, or None when absent or unreadable."""
    try:
        data = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def numbers(rows: list[dict], names: list[str], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps [n], values [n, len(names)]) of rows, empty cells as NaN."""
    try:
        steps = np.array([int(float(r["step"])) for r in rows], dtype=np.int64)
        values = [[float(r[n]) if r.get(n) else math.nan for n in names] for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{path}: not a metrics table ({first_line(exc)})") from None
    return steps, np.array(values, dtype=np.float64).reshape(len(rows), len(names))


# checkpoints/step=<N>.ckpt, N updates done; "-v<k>": the versioned copies of Lightning's
# ModelCheckpoint in runs that predate RunCheckpoint (read back, never pruned)
STEP_FILE = re.compile(r"step=(\d+)(-v\d+)?\.ckpt")


def step_files(folder: Path, versioned: bool = True) -> list[tuple[int, Path]]:
    """(step, path) of every step=<N>.ckpt in `folder`, ascending by step, a step's unversioned file
    first; without `versioned`, only the unversioned names RunCheckpoint writes."""
    found = []
    for path in Path(folder).glob("step=*.ckpt"):
        m = STEP_FILE.fullmatch(path.name)
        if m and (versioned or m.group(2) is None):
            found.append((int(m.group(1)), m.group(2) or "", path))
    return [(step, path) for step, _, path in sorted(found)]


def checkpoints_by_step(run_dir: Path) -> list[tuple[int, Path]]:
    """(global_step, path) of every step=N.ckpt, ascending (one path per step)."""
    found: dict[int, Path] = {}
    for step, path in step_files(Path(run_dir) / "checkpoints"):
        found.setdefault(step, path)
    return sorted(found.items())


def read_checkpoint(path: Path, require: tuple = ()) -> dict:
    """The one reader of a checkpoint file (torch.load, on the CPU): RunError, one line, when it
    cannot be read, holds no state_dict or lacks a key of `require`."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise RunError(f"{path}: cannot read checkpoint ({first_line(exc)})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise RunError(f"{path}: not a Lightning checkpoint (no state_dict)")
    for key in require:
        if key not in ckpt:
            raise RunError(f"{path}: cannot read checkpoint ({key!r})")
    return ckpt

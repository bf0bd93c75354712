"""Run directories: unique names, atomic writes, reading a finished or interrupted run back."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

RUN_FILES = ("config.yaml",)  # the files that make a directory a run directory


def new_run_dir(root: str | os.PathLike, task: str) -> Path:
    """runs/<task>/<YYYYmmdd-HHMMSS>-<6 hex>/, created exclusively: two runs started in the same
    second never share a directory."""
    parent = Path(root) / task
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    while True:
        path = parent / f"{stamp}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same directory, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_npz(path: str | os.PathLike, compressed: bool = False, **arrays) -> None:
    """np.savez(_compressed) of arrays, written atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def is_run_dir(path: str | os.PathLike) -> bool:
    return all((Path(path) / name).is_file() for name in RUN_FILES)


def last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None

"""Run directories: unique names, atomic writes, reading a finished or interrupted run back."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

RUN_FILES = ("config.yaml",)  # the files that make a directory a run directory
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it


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
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would have
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_link(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """path becomes a hard link to source's bytes (one copy on disk), placed atomically; where the
    file system has no hard links, a copy written atomically."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.link{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
    except OSError:
        tmp.unlink(missing_ok=True)
        atomic_write_bytes(path, Path(source).read_bytes())
        return
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def link_copies(copies: str | os.PathLike, originals: str | os.PathLike) -> int:
    """Each file under `copies` whose bytes equal a file under `originals` (outside `copies`)
    becomes a hard link to it: W&B's offline run keeps its own copy of every figure and page the
    run directory already has. Returns the bytes freed."""
    copies, originals = Path(copies).resolve(), Path(originals).resolve()
    by_size: dict[int, list[Path]] = {}
    for path in originals.rglob("*"):
        if path.is_file() and not path.is_symlink() and copies not in path.parents:
            by_size.setdefault(path.stat().st_size, []).append(path)
    freed = 0
    for copy in copies.rglob("*"):
        if not copy.is_file() or copy.is_symlink() or copy.stat().st_nlink > 1:
            continue
        size = copy.stat().st_size
        data = None
        for original in by_size.get(size, []):
            data = copy.read_bytes() if data is None else data
            if original.read_bytes() == data:
                atomic_link(original, copy)
                freed += size
                break
    return freed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_npz(path: str | os.PathLike, compressed: bool = False, **arrays) -> None:
    """np.savez(_compressed) of arrays, written atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def write_csv_table(path: str | os.PathLike, rows, columns) -> None:
    """Rows (mappings) as a CSV table with these columns, None as empty, written atomically."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    atomic_write_text(path, buf.getvalue())


def write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def is_run_dir(path: str | os.PathLike) -> bool:
    return all((Path(path) / name).is_file() for name in RUN_FILES)


def last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """checkpoints/last.ckpt; in a run written before last.ckpt was rewritten in place, the newest of
    Lightning's versions (last-v1.ckpt, ...) by modification time."""
    folder = Path(run_dir) / "checkpoints"
    found = [p for p in folder.glob("last*.ckpt") if p.is_file()] if folder.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


class RunLocked(OSError):
    """Another process is training this run directory."""


def lock_run(run_dir: str | os.PathLike):
    """An exclusive lock on <run_dir>/.lock, held while the returned file stays open (the kernel
    drops it when the process dies, even by kill -9). Raises RunLocked if another process holds it."""
    path = Path(run_dir) / ".lock"
    handle = open(path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RunLocked(f"{run_dir} is being trained by another process (lock on {path})") from None
    return handle

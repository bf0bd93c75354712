"""How processes on one out_dir coordinate: locks (a sweep started twice never trains a batch
twice) and waiting for another rank's files."""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from rich.console import Console

from grok_lightning.sweep.spec import SweepError


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def wait_for(paths: Sequence[Path], timeout_s: float, what: str, failed=lambda: None) -> None:
    """Poll until every path exists; `failed()` returning a message (another rank died) ends it early."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        missing = [p for p in paths if not p.is_file()]
        if not missing:
            return
        message = failed()
        if message:
            raise SweepError(
                f"gave up waiting for {what}: {message}; rerun the same command to finish the rest"
            )
        if time.monotonic() > deadline:
            raise SweepError(
                f"timed out after {timeout_s:g} s waiting for {what} ({len(missing)} missing, "
                f"e.g. {missing[0]}); rerun the same command to finish: done batches are skipped"
            )
        time.sleep(delay)
        delay = min(2.0, delay * 1.5)


def try_lock(path: Path):
    """An open file holding an exclusive flock on `path`, or None when another process holds it.
    The kernel drops the lock when its holder exits, however it exits: a killed sweep leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.contextmanager
def locked(path: Path, timeout_s: float, what: str, console: Optional[Console] = None):
    """Hold the lock on `path`, waiting (polling) up to timeout_s for another process to let go;
    says so in one line on `console` when it has to wait."""
    deadline, delay = time.monotonic() + timeout_s, 0.05
    while (handle := try_lock(path)) is None:
        if console is not None and delay == 0.05:
            console.print(f"waiting for {what} (another process holds {path})")
        if time.monotonic() > deadline:
            raise SweepError(f"timed out after {timeout_s:g} s waiting for {what} (lock {path})")
        time.sleep(delay)
        delay = min(2.0, delay * 1.5)
    with handle:
        yield

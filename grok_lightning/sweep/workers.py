"""Local workers: a sweep started without a launcher uses every core of the machine.

The sweep starts N copies of itself as ranks 0..N-1 with the variables torchrun gives its
processes (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, TORCHELASTIC_RUN_ID): each copy's
`detect_launch` reads them as it reads any launcher's, so one machine and a cluster share one code
path (plan, calibration, locks, merge). One process uses one core (train.cpu_threads=1): on a CPU,
processes scale where a second thread barely helps at these sizes (docs/architecture.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Sequence

import torch
from omegaconf import DictConfig

from grok_lightning import config as C

ENV_DEFAULT = "GROK_SWEEP_WORKERS"  # the default of `workers=0` (tests set 1: in-process sweeps)
ENV_WORKER = "GROK_SWEEP_WORKER"  # set in every worker (its lines say "[rank i/N]")
ENV_PARENT = "GROK_SWEEP_PARENT"  # the starting process's pid: a worker ends when it is gone
PARENT_POLL_S = 1.0


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # a taskset / cgroup CPU set, not the machine's count
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def worker_count(scfg: DictConfig, cfg: DictConfig, device: torch.device, n_models: int) -> int:
    """How many processes to start: `workers`, else `world_size`, else $GROK_SWEEP_WORKERS, else
    one per usable core over train.cpu_threads (0 = torch's own count: one process). One per
    accelerator is the launchers' job: a GPU or MPS sweep without one runs in this process."""
    if scfg.workers and scfg.world_size and scfg.workers != scfg.world_size:
        raise C.ConfigError(f"workers={scfg.workers} and world_size={scfg.world_size} disagree")
    n = scfg.workers or scfg.world_size
    if not n:
        env = os.environ.get(ENV_DEFAULT, "")
        if env:
            if not env.isdigit() or int(env) < 1:
                raise C.ConfigError(f"${ENV_DEFAULT}={env!r} must be a whole number >= 1")
            n = int(env)
        elif device.type != "cpu":
            n = 1
        else:
            threads = cfg.train.cpu_threads
            n = usable_cores() // threads if threads else 1
    return max(1, min(n, n_models))


def start_workers(argv: Sequence[str], n: int) -> int:
    """Run `python -m grok_lightning.sweep argv` as n ranks; their exit code (the first non-zero one,
    130 after an interrupt). Workers run in their own session, so a Ctrl-C reaches them once,
    forwarded from here, and every one of them stops at its next step boundary."""
    run_id = f"grok-workers-{os.getpid()}"
    sys.stdout.flush()  # the workers write to the same file: under nohup, this process's lines come first
    procs = []
    for rank in range(n):
        env = {
            **os.environ,
            "TORCHELASTIC_RUN_ID": run_id,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "GROUP_RANK": "0",
            "WORLD_SIZE": str(n),
            "LOCAL_WORLD_SIZE": str(n),
            ENV_WORKER: "1",
            ENV_PARENT: str(os.getpid()),
        }
        cmd = [sys.executable, "-m", "grok_lightning.sweep", *argv]
        procs.append(subprocess.Popen(cmd, env=env, start_new_session=True))

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if any(c in (130, -signal.SIGINT, -signal.SIGTERM) for c in codes):
        return 130
    return next((c for c in codes if c != 0), 0)


def watch_parent() -> None:
    """In a worker: when the process that started it is gone (killed, even with -9: its workers
    run in their own session, so nothing else reaches them), stop as after a SIGTERM, at the next
    step boundary with the batch's state saved, instead of training on as an orphan."""
    parent = os.environ.get(ENV_PARENT)
    if not parent:
        return

    def poll() -> None:
        while os.getppid() == int(parent):
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=poll, name="watch-parent", daemon=True).start()

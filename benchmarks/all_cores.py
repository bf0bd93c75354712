"""The sweep's batches on every core at once: one process per core ("spawn", torch threads = 1), each
training its own batch. The processes are started once and run every shape in turn; a barrier starts
each shape's fits together, and a shape's rate is its total model-steps over the slowest fit."""

from __future__ import annotations

import multiprocessing as mp
import queue
import time

import torch

from benchmarks import settings


def _batch(job: dict) -> tuple:
    from grok_lightning.sweep.batch import padded

    if job["task"] == "modadd":
        cfg, models = settings.modadd_main(job["steps"], job["k"])
    else:
        cfg, models = settings.parity_group(job["n_neurons"], job["train_size"], job["steps"])
    return cfg, padded(models[: job["k"]])


def _worker(jobs: list, barrier, results) -> None:
    from grok_lightning.sweep.batch import fit_batch

    settings.quiet_lightning()
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    fit_batch(*_batch({**jobs[0], "steps": 20}), cpu)  # first-fit costs (imports, allocator) untimed
    for index, job in enumerate(jobs):
        cfg, models = _batch(job)
        barrier.wait()
        start = time.perf_counter()
        fit_batch(cfg, models, cpu)
        results.put((index, time.perf_counter() - start))


def run_all(jobs: list, processes: int) -> list:
    """For each job (task, shape, k, steps): model-steps per second of `processes` such batches at once,
    or the reason it could not be measured."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(jobs, barrier, results), daemon=True) for _ in range(processes)
    ]
    for w in workers:
        w.start()
    walls: dict = {i: [] for i in range(len(jobs))}
    reason = None
    try:
        pending = len(jobs) * processes
        while pending:
            try:
                index, seconds = results.get(timeout=1.0)
            except queue.Empty:
                failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                if failed:  # out of memory, killed: report it, keep what finished
                    reason = f"a worker process exited with code {failed[0]}"
                    break
                continue
            walls[index].append(seconds)
            pending -= 1
    finally:
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.terminate()
    rates = []
    for i, job in enumerate(jobs):
        if len(walls[i]) == processes:
            rates.append({"model_steps_per_s": processes * job["k"] * job["steps"] / max(walls[i])})
        else:
            rates.append({"error": reason or "no result"})
    return rates

"""`make bench [ARGS="--quick --out FILE --only NAME ..."]`: every benchmark, tables printed with rich,
numbers written to a JSON file (default bench_results.json)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

import torch
from rich.console import Console

from benchmarks import (
    calibration_check,
    compiled,
    grid_bound,
    lightning_overhead,
    settings,
    sweep_speedup,
    throughput,
)
from grok_lightning import runs

BENCHES = {
    "overhead": lightning_overhead,
    "speedup": sweep_speedup,
    "calibration": calibration_check,
    "throughput": throughput,
    "compile": compiled,
    "grid_bound": grid_bound,
}


def _at_least(lowest: int):
    def count(text: str) -> int:
        value = int(text)
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{value} must be >= {lowest}")
        return value

    return count


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of everything: checks that it runs")
    parser.add_argument("--steps", type=_at_least(1), help="optimiser steps per timed fit (every benchmark)")
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHES), help="run only these (repeatable)"
    )
    parser.add_argument("--processes", type=_at_least(0), default=0, help="all-cores column (0: every core)")
    parser.add_argument("--compile-backend", help="torch.compile backend (default inductor; --quick: eager)")
    parser.add_argument("--out", default="bench_results.json", help="where the numbers go (JSON)")
    args = parser.parse_args(argv)
    if not Path(args.out).resolve().parent.is_dir():  # found now, not after minutes of measuring
        parser.error(f"--out {args.out}: no such folder {Path(args.out).parent}")
    return args


def scale_of(args) -> settings.Scale:
    scale = settings.QUICK if args.quick else settings.FULL
    if args.steps:
        steps = -(-args.steps // 10) * 10  # a whole number of Lightning calls (steps_per_call = 10)
        fields = ("steps", "speedup_steps", "overhead_steps", "compile_steps")
        scale = dataclasses.replace(scale, **dict.fromkeys(fields, steps))
    if args.compile_backend:
        scale = dataclasses.replace(scale, compile_backend=args.compile_backend)
    return scale


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    console, scale = Console(), scale_of(args)
    names = args.only or list(BENCHES)
    results = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count()},
        "scale": dataclasses.asdict(scale),
    }
    start = time.perf_counter()
    settings.quiet_lightning()
    for name in names:
        console.rule(f"[bold]{name}[/]")
        bench_start = time.perf_counter()
        if name == "throughput":
            results[name] = throughput.run(console, scale, args.processes)
        elif name == "compile":
            k = [r["K"] for r in results.get("throughput", {}).get("rows", [])]
            results[name] = compiled.run(
                console, scale, parity_k=k[len(settings.PARITY_SHAPES) - 1] if k else 2
            )
        else:
            results[name] = BENCHES[name].run(console, scale)
        results[name]["wall_s"] = time.perf_counter() - bench_start
    results["wall_s"] = time.perf_counter() - start
    runs.write_json(args.out, results)
    console.print(f"{', '.join(names)} in {results['wall_s']:.0f} s; numbers -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

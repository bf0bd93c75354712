"""Benchmarks of grok_lightning, run from the repository root by `make bench` (`python -m benchmarks`);
not part of the installed package. One module per measurement:

- lightning_overhead: ms per step of the Lightning run against a plain PyTorch loop, callbacks on and off
- sweep_speedup: a batched parity group against the same models as single runs
- calibration_check: the K the sweep's calibration picks, re-measured against K = 1
- throughput: model-steps per second per shape, one at a time / batched / batched on every core
- compiled: torch.compile against eager on the plain PyTorch step
- grid_bound: the 20,000-step parity grid's floor from the time of its matrix products alone

Numbers vary with the machine and its load: compare only within one run.
"""

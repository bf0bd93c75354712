"""grok_lightning: grokking experiments as a PyTorch Lightning tool. `load_run(run_dir)` reads a
finished run back (grok_lightning.record); the package import itself stays light (no torch)."""

import os

# MKL's strict conditional numerical reproducibility: without it MKL's batched products on some CPUs
# (AMD EPYC, measured) round a matrix by its position in the batch, so a sweep model's numbers would
# depend on its batch neighbours (docs/experiments.md, "Numerics"). Read at MKL's first call, so
# set before any; a user's own setting wins; ignored where torch has no MKL.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


def load_run(run_dir):
    """The RunRecord of a run directory: config, history, summary, trajectory, checkpoints,
    model_at(step). See grok_lightning.record."""
    from grok_lightning.record import load_run as _load_run

    return _load_run(run_dir)


__all__ = ["load_run"]

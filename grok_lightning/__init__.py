"""grok_lightning: grokking experiments as a PyTorch Lightning tool. `load_run(run_dir)` reads a
finished run back (grok_lightning.record); the package import itself stays light (no torch)."""


def load_run(run_dir):
    """The RunRecord of a run directory: config, history, summary, trajectory, checkpoints,
    model_at(step). See grok_lightning.record."""
    from grok_lightning.record import load_run as _load_run

    return _load_run(run_dir)


__all__ = ["load_run"]

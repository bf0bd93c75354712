"""Analysis callbacks, installed as grok_lightning.callbacks."""

from __future__ import annotations


def build_callbacks(cfg, task, run_dir) -> list:
    """The analysis callbacks that the config switches on and the task declares applicable."""
    return []

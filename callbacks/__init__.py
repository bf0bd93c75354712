"""Analysis callbacks, installed as grok_lightning.callbacks: one small class per job, each
switched and timed by the `callbacks:` section of the config, each applied only where the task
declares the analysis it needs (task.analyses), never by task name."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .bit_mass import BitMass
from .dft_sparsity import DFTSparsity
from .fourier_stars import FourierStars
from .loss_gap import LossGap
from .progress_measures import ProgressMeasures
from .trajectory import Trajectory
from .transformer_circuit import TransformerCircuit
from .weight_heatmaps import WeightHeatmaps

# config key -> (class, the analysis the task must declare; None: every task)
REGISTRY = {
    "loss_gap": (LossGap, None),
    "dft_sparsity": (DFTSparsity, "fourier"),
    "progress_measures": (ProgressMeasures, "fourier"),
    "fourier_stars": (FourierStars, "fourier"),
    "weight_heatmaps": (WeightHeatmaps, "heatmaps"),
    "bit_mass": (BitMass, "bit_mass"),
    "trajectory": (Trajectory, "heatmaps"),  # weight frames for the explorer page
    "transformer_circuit": (TransformerCircuit, "transformer"),  # model.kind=transformer only
}

__all__ = [
    "BitMass",
    "DFTSparsity",
    "FourierStars",
    "LossGap",
    "ProgressMeasures",
    "Trajectory",
    "TransformerCircuit",
    "WeightHeatmaps",
    "REGISTRY",
    "build_callbacks",
]


def build_callbacks(cfg, task, run_dir: Optional[Path], *, include_disabled: bool = False) -> list:
    """The analysis callbacks that the config switches on and the task declares applicable.
    include_disabled: every applicable one, whatever the switches (the report re-renders all)."""
    section = cfg.get("callbacks")
    if section is None:
        return []
    analyses_for = getattr(task, "analyses_for", None)  # a Task; a stub may declare just `analyses`
    analyses = analyses_for(cfg) if analyses_for else frozenset(getattr(task, "analyses", ()))
    out = []
    for key, (cls, needs) in REGISTRY.items():
        toggle = section.get(key)
        if toggle is None or (needs is not None and needs not in analyses):
            continue
        if not (toggle.enabled or include_disabled):
            continue
        kw = {"top_k": toggle.get("top_k", 5)} if cls is DFTSparsity else {}
        out.append(
            cls(
                cfg, task, run_dir, scalars_every=toggle.scalars_every, frames_every=toggle.frames_every, **kw
            )
        )
    return out

"""Per-model metric histories of a sweep, kept beside results.csv so that any model's curves and
learned frequencies can be read back and compared (one compressed npz per batch).

histories/<batch id>.npz:
    model_ids        [K] str
    steps            [T] int64          the logged steps (the run's log cadence)
    metric_names     [M] str            grok_lightning.module.METRICS ("test/" = the test set)
    values           [T, K, M] float32
    neuron_frequency [K, n] int16       modular addition only: each neuron's frequency at the end
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from grok_lightning import fourier, runs


def learned_frequencies(W_input: torch.Tensor) -> tuple[np.ndarray, list[list[int]]]:
    """W_input [K, p, n] -> (each neuron's frequency [K, n], each model's key frequencies)."""
    with torch.no_grad():
        dft = fourier.dft_input(W_input.detach().to(torch.float64).cpu())
        per_neuron = fourier.neuron_frequencies(dft).numpy().astype(np.int16)
        keys = [fourier.key_frequencies(dft[k]) for k in range(dft.shape[0])]
    return per_neuron, keys


def neurons_per_key_frequency(neuron_frequency: Sequence[int], keys: Sequence[int]) -> dict[int, int]:
    """How many neurons sit on each key frequency."""
    freqs = list(np.asarray(neuron_frequency).tolist())
    return {int(f): freqs.count(f) for f in keys}


def save_batch(
    path: Path,
    model_ids: Sequence[str],
    steps: Sequence[int],
    values: torch.Tensor,
    metric_names: Sequence[str],
    neuron_frequency: Optional[np.ndarray] = None,
) -> None:
    """Write one batch's histories atomically (temporary name, then rename)."""
    arrays = {
        "model_ids": np.asarray(list(model_ids), dtype=str),
        "steps": np.asarray(list(steps), dtype=np.int64),
        "metric_names": np.asarray(list(metric_names), dtype=str),
        "values": values.detach().cpu().numpy().astype(np.float32),
    }
    if neuron_frequency is not None:
        arrays["neuron_frequency"] = np.asarray(neuron_frequency, dtype=np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.atomic_write_npz(path, compressed=True, **arrays)


def load(sweep_dir: Path) -> dict[str, dict]:
    """model id -> {"steps": [T], "<metric>": [T] per metric, "neuron_frequency": [n] or absent}."""
    out: dict[str, dict] = {}
    for path in sorted(Path(sweep_dir, "histories").glob("*.npz")):
        with np.load(path) as z:
            names = [str(n) for n in z["metric_names"]]
            values = z["values"]
            nf = z["neuron_frequency"] if "neuron_frequency" in z.files else None
            for k, model_id in enumerate(str(m) for m in z["model_ids"]):
                entry = {"steps": z["steps"].copy(), **{n: values[:, k, i] for i, n in enumerate(names)}}
                if nf is not None:
                    entry["neuron_frequency"] = nf[k]
                out.setdefault(model_id, entry)
    return out

"""The run page: curves from metrics.csv, milestones from summary.json, and every frame of the
slider from trajectory.npz (the Trajectory callback). The math is grok_lightning.fourier's; this
module only arranges its results for the page. What the page shows follows the analyses the run's
task declares (the trajectory records them), never the task's name."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from omegaconf import OmegaConf

from grok_lightning import forecast, outcome
from grok_lightning import fourier as fo
from grok_lightning.callbacks.fourier_stars import largest_groups
from grok_lightning.callbacks.trajectory import FILENAME
from grok_lightning.module import METRICS

from ._page import packed, write_page
from .names import ExplorerError

# FactoredMLP.act by the activation name the trajectory records (the page has no model to ask).
ACTIVATIONS = {"relu": torch.relu, "square": torch.square}
ACC_THRESHOLD = 0.99  # memorised / generalised: train / test accuracy first >= this
SHOWN_KEYS = ("model.n_neurons", "optim.regularization", "optim.lr", "optim.weight_decay", "train.seed")


def write_run_page(run_dir) -> Path:
    """(Re)build <run_dir>/explorer.html from the run's files; works for finished, interrupted and
    diverged runs, and for runs without trajectory.npz (curves only, with a note)."""
    run_dir = Path(run_dir)
    return write_page(run_dir, run_payload(run_dir))


def run_payload(run_dir: Path) -> dict:
    from grok_lightning.record import RunError, load_run
    from grok_lightning.tasks import TASKS

    try:
        record = load_run(run_dir)
    except RunError as exc:
        raise ExplorerError(str(exc)) from None
    cfg = record.config
    summary = _read_json(run_dir / "summary.json")  # the page shows what the run wrote, if anything
    try:  # a damaged metrics.csv is refused, as the report refuses it; a missing one has no curves
        logged = record.history
    except RunError as exc:
        raise ExplorerError(str(exc)) from None
    history = (logged.steps.tolist(), logged.values[:, None, :]) if len(logged) else None
    notes = [] if history is not None else ["metrics.csv has no logged rows: no curves"]
    traj = record.trajectory
    frames = None
    if traj is None and (run_dir / FILENAME).exists():
        notes.append(f"{FILENAME} is unreadable (a damaged file): no frames")
    elif traj is None and "transformer" in TASKS[cfg.task].analyses_for(cfg):
        notes.append(
            "the transformer's weights have no frames on this page: its end-of-run figures are below"
        )
    elif traj is None and OmegaConf.select(cfg, "model.kind") == "decoder":
        notes.append("the decoder has no weight views: its curves and verdicts only")
    elif traj is None:
        notes.append(
            f"no {FILENAME} in this run (the trajectory callback was off, or the run predates it): "
            "curves only, no frames"
        )
    else:
        meta = traj["meta"]
        analyses = set(meta.get("analyses") or TASKS[cfg.task].analyses_for(cfg))
        try:
            frames = frame_payload(
                traj, analyses, meta, top_k=OmegaConf.select(cfg, "callbacks.dft_sparsity.top_k", default=5)
            )
        except (ValueError, RuntimeError, KeyError, IndexError) as exc:  # a damaged file: curves still
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            notes.append(f"{FILENAME} could not be turned into frames ({reason}): curves only")
    return {
        "kind": "run",
        "title": f"{cfg.task} / {cfg.preset} — {run_dir.name}",
        "config": config_line(cfg),
        "status": summary.get("status"),
        "verdict": summary.get("verdict_text"),
        "phase": summary.get("outcome"),
        "phase_reason": summary.get("outcome_reason"),
        "fate": summary.get("fate"),
        "fate_reason": summary.get("fate_reason"),
        "budget": summary.get("extension") if summary.get("extra_steps") else None,
        "fate_track": fate_track(cfg, history, traj["steps"] if frames else None),
        "notes": notes,
        "curves": curve_payload(history) if history is not None else None,
        "milestones": milestones(summary, history),
        "frames": frames,
        "figures": run_figures(run_dir) if "transformer" in TASKS[cfg.task].analyses_for(cfg) else [],
    }


# end-of-run PNGs the page shows as they are: figures/<name>.png -> (title, caption)
RUN_FIGURES = {
    "progress": (
        "Progress measures",
        "restricted loss (the logits' key-frequency part, all pairs) and excluded loss (without it, "
        "training pairs) against train and test loss (Nanda et al. 2023)",
    ),
    "embedding_spectrum": (
        "The token embedding in the Fourier basis",
        "its norm per frequency at the end (key frequencies dark) and the spectrum's Gini coefficient "
        "over training",
    ),
    "attention": (
        "Attention",
        'how much the "=" position attends to the first operand a, per head, over every (a, b)',
    ),
    "neuron_clusters": (
        "MLP neurons by frequency",
        "each neuron's activation over (a, b) in the 2D Fourier basis: the neurons one frequency "
        "explains >= 85%",
    ),
}


def run_figures(run_dir: Path) -> list[dict]:
    """A transformer run's end-of-run figures as data: URIs (the MLP's views are drawn by the page)."""
    out = []
    for name, (title, caption) in RUN_FIGURES.items():
        png = run_dir / "figures" / f"{name}.png"
        if png.is_file():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            out.append({"title": title, "caption": caption, "src": "data:image/png;base64," + data})
    return out


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def config_line(cfg) -> str:
    items = {f"data.{k}": v for k, v in cfg.data.items() if v is not None}  # data.seed: unset = train.seed
    shown = SHOWN_KEYS
    kind = OmegaConf.select(cfg, "model.kind")
    if kind in ("transformer", "decoder"):
        sizes = ("d_model", "n_heads", "d_mlp") + (("n_layers",) if kind == "decoder" else ())
        shown = ("model.kind", *(f"model.{kind}.{k}" for k in sizes), *SHOWN_KEYS[1:])
    if OmegaConf.select(cfg, "train.batch_size"):
        shown = (*shown, "train.batch_size")
    items.update({k: OmegaConf.select(cfg, k) for k in shown if OmegaConf.select(cfg, k) is not None})
    items["steps"] = cfg.train.max_steps
    if cfg.train.get("step_cap", 0) > cfg.train.max_steps:
        items["cap"] = cfg.train.step_cap
    return ", ".join(f"{k.split('.')[-1]} {v}" for k, v in items.items())


# ------------------------------------------------------------------------------------------ fate
def fate_track(cfg, history, frame_steps) -> Optional[dict]:
    """The fate (grok_lightning.fate) as the run stood at each slider step, judged from the rows
    logged up to that step only: what the console said while it trained."""
    from grok_lightning import config as C

    if history is None or frame_steps is None:
        return None
    steps, values = history
    budget = C.budget(cfg)
    col = {name: values[:, 0, METRICS.index(name)] for name in ("train/acc", "test/acc", "test/loss")}
    fates, etas = [], []
    for n in np.searchsorted(np.asarray(steps), np.asarray(frame_steps), side="right").tolist():
        f = budget.fate_of(steps[:n], col["train/acc"][:n], col["test/acc"][:n], col["test/loss"][:n])
        fates.append(f.fate)
        etas.append(f.eta_step)
    track = {"fate": fates, "eta": etas}
    reference = forecast.load_reference(cfg)
    if reference is not None:  # the early warning as it stood at each step (grok_lightning.forecast)
        metrics = {name: values[:, 0, i] for i, name in enumerate(METRICS)}
        fitted: dict = {}
        track["forecast"] = [
            forecast.forecast_line(forecast.forecast(steps, metrics, s, reference, fitted=fitted))
            if s >= reference["grid"][0]
            else None
            for s in np.asarray(frame_steps).tolist()
        ]
    return track


# ------------------------------------------------------------------------------------------ curves
def curve_payload(history) -> dict:
    steps, values = history
    col = {name: values[:, 0, i] for i, name in enumerate(METRICS)}
    return {
        "steps": packed(steps, "i4"),
        "train_loss": packed(col["train/loss"]),
        "test_loss": packed(col["test/loss"]),
        "train_acc": packed(col["train/acc"]),
        "test_acc": packed(col["test/acc"]),
    }


def milestones(summary: dict, history) -> dict:
    """summary.json's memorise / generalise steps; computed from the curves for a run that has none."""
    if "memorise_step" in summary or "generalise_step" in summary:
        return {k: summary.get(k) for k in ("memorise_step", "generalise_step")}
    if history is None:
        return {"memorise_step": None, "generalise_step": None}
    steps, values = history
    acc = {name: values[:, 0, METRICS.index(name)].tolist() for name in ("train/acc", "test/acc")}
    return {
        "memorise_step": outcome.first_step_at_or_above(steps, acc["train/acc"], ACC_THRESHOLD),
        "generalise_step": outcome.first_step_at_or_above(steps, acc["test/acc"], ACC_THRESHOLD),
    }


# ------------------------------------------------------------------------------------------ frames
def frame_payload(traj: dict, analyses: set, meta: dict, top_k: int = 5) -> dict:
    # float32 as stored: the page draws float16, and the frames are fast to analyse in float32
    W_in = torch.from_numpy(traj["W_input"]).float()  # [T, rows, n]
    W_out = torch.from_numpy(traj["W_output"]).float()  # [T, n, cols]
    W_b = torch.from_numpy(traj["W_input_b"]).float() if "W_input_b" in traj else W_in
    out: dict = {"steps": packed(traj["steps"], "i4"), "count": int(len(traj["steps"]))}
    if "bit_mass" in analyses:
        k = int(meta.get("k") or 3)
        out["heatmaps"] = parity_heatmaps(W_in, W_out, k)
        share = 1.0 - fo.first_bits_mass_share(W_in, k)
        out["distractor"] = {"share": packed(share), "k": k, "n_bits": W_in.shape[-2] - 1}
    else:
        out["heatmaps"] = token_heatmaps(W_in, W_out)
    if "fourier" in analyses:
        out["fourier"] = fourier_payload(W_in, W_b, W_out, meta.get("activation"), top_k)
        if meta.get("fixed_embed_freqs"):
            out["circles"] = circles_payload(W_in, W_out, meta["fixed_embed_freqs"])
    return out


def token_heatmaps(W_in, W_out) -> list[dict]:
    """Modular addition: one row per neuron on both sides, tokens as columns."""
    return [
        {
            "name": "W_input",
            "matrix": packed(W_in.transpose(1, 2), "q1"),
            "rows": "neuron",
            "cols": "input token a (or b)",
            "sortable": True,
        },
        {
            "name": "W_output",
            "matrix": packed(W_out, "q1"),
            "rows": "neuron",
            "cols": "output logit c",
            "sortable": True,
        },
    ]


def parity_heatmaps(W_in, W_out, k: int) -> list[dict]:
    """Sparse parity: W_input one row per bit and the bias row (neurons as columns), W_output a strip."""
    n_bits = W_in.shape[-2] - 1
    names = [f"bit {i + 1}" for i in range(n_bits)] + ["bias"]
    return [
        {
            "name": "W_input",
            "matrix": packed(W_in, "q1"),
            "rows": "input bit",
            "cols": "neuron",
            "row_names": names,
            "row_marks": [k, n_bits],  # lines after the relevant bits and before the bias row
            "sortable": False,
        },
        {
            "name": "W_output",
            "matrix": packed(W_out.transpose(1, 2), "q1"),
            "rows": "logit",
            "cols": "neuron",
            "row_names": ["logit"],
            "sortable": False,
        },
    ]


def fourier_payload(W_in, W_b, W_out, activation: Optional[str], top_k: int) -> dict:
    """Per frame: the DFT norms, each neuron's frequency, the (cos, sin) pairs at the neurons' final
    frequencies (the stars), each final group's logit wave, the sparsity numbers."""
    T, p, n = W_in.shape
    dft_in, dft_out = fo.dft_input(W_in), fo.dft_output(W_out)
    freqs = fo.neuron_frequencies(dft_in)  # [T, n]
    final = freqs[-1]
    groups = largest_groups(W_in[-1])
    at_final = final.expand(T, n)
    sparsity = fo.sparsity_measures(W_in, W_out, top_k)
    out = {
        "p": p,
        "norms_in": packed(fo.frequency_norms(dft_in), "f2"),
        "norms_out": packed(fo.frequency_norms(dft_out), "f2"),
        "freqs": packed(freqs, "i2"),
        "final_freqs": final.tolist(),
        "order": sorted(range(n), key=lambda i: (int(final[i]), i)),
        "groups": [{"freq": f, "neurons": neurons} for f, neurons in groups.items()],
        "key_frequencies": fo.key_frequencies(dft_in[-1]),
        "phase_in": packed(fo.neuron_phases(dft_in, at_final), "f2"),
        "phase_out": packed(fo.neuron_phases(dft_out, at_final), "f2"),
        "sparsity": {"names": list(sparsity), "values": packed(torch.stack(list(sparsity.values()), -1))},
    }
    act = ACTIVATIONS.get(activation or "")
    if act is not None and groups:
        out["waves"] = group_waves(W_in, W_b, W_out, act, groups)
    return out


def group_waves(W_in, W_b, W_out, act, groups: dict, chunk: int = 32) -> dict:
    """Each shown group's logit wave and fitted cosine at every frame (chunks of frames bound the
    [frames, p, p, n] activations in memory)."""
    parts = [
        fo.group_wave_fits(W_in[t : t + chunk], W_b[t : t + chunk], W_out[t : t + chunk], act, groups)
        for t in range(0, W_in.shape[0], chunk)
    ]
    res = {k: torch.cat([part[k] for part in parts]) for k in parts[0]}
    fit = torch.stack([res[k] for k in ("offset", "amplitude", "phase", "r2")], -1)  # [T, G, 4]
    return {"wave": packed(res["wave"], "f2"), "fit": packed(fit)}


def circles_payload(W_in, W_out, freqs: list) -> dict:
    """A fixed circle embedding: every neuron's (cos, sin) pair at each embedding frequency."""
    dft_in, dft_out = fo.dft_input(W_in), fo.dft_output(W_out)
    T, _, n = dft_in.shape

    def at(dft, f):
        return fo.neuron_phases(dft, torch.full((T, n), int(f), dtype=torch.long))

    return {
        "freqs": [int(f) for f in freqs],
        "in": packed(torch.stack([at(dft_in, f) for f in freqs], 1)),  # [T, F, n, 2]
        "out": packed(torch.stack([at(dft_out, f) for f in freqs], 1)),
    }

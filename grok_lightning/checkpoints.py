"""A GrokModule back from a run's saved weights, with the run's data attached (so `module.measure()`
works at once): a checkpoint's (the model its config builds, the checkpoint's weights and metric
history), or a trajectory frame's (the collapsed weights the explorer draws at that step)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from grok_lightning.run_files import RunError, config_from, read_checkpoint, read_config

# A collapsed FactoredMLP's weights <- the trajectory arrays that are them (any other model's
# parameters carry the arrays' own names: ParityMLP's W_input, W_output)
FRAME_ARRAYS = {"embed": "W_input", "embed_a": "W_input", "embed_b": "W_input_b", "unembed": "W_output"}


def module_from_checkpoint(path, map_location=None, ckpt: dict | None = None):
    """GrokModule of the run whose checkpoint `path` is (checkpoints/<name>.ckpt of a run)."""
    from grok_lightning.build import build_run_module

    path = Path(path)
    ckpt = ckpt if ckpt is not None else read_checkpoint(path)
    if ckpt.get("grok_config"):
        cfg = config_from(ckpt["grok_config"], f"{path} (its config)")
    else:  # checkpoints written before they carried their config
        cfg = read_config(path.parent.parent)
    datamodule, module = build_run_module(cfg)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise RunError(f"{path} does not fit the model of its config: {str(exc).splitlines()[0]}") from None
    module.on_load_checkpoint(ckpt)
    if map_location is not None:
        module.to(map_location)
    module.attach_data(datamodule)
    return module.eval()


def module_from_frame(cfg: DictConfig, trajectory: dict, index: int):
    """GrokModule of a run at trajectory frame `index`. A frame holds the collapsed weights
    (W_input, W_output, W_input_b when the input sides are untied), which fix what the network
    computes: a factored model comes back as its collapsed twin (a FactoredMLP with collapsed_hidden
    and collapsed_out whose weights are the frame's matrices), any other model with the frame's
    matrices as its parameters. Float32 values, as the frame stores them; no optimiser state and
    no metric history (the run's history is record.history)."""
    import torch

    from grok_lightning.build import build_run_module
    from grok_lightning.callbacks._base import collapsed_weights
    from grok_lightning.callbacks.trajectory import ARRAYS
    from grok_lightning.model import FactoredMLP

    frame = {name: trajectory[name][index] for name in ARRAYS if name in trajectory}
    if OmegaConf.select(cfg, "model.init") is not None:
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.model.init = "torch"  # never the original draw: the weights are replaced
    datamodule, module = build_run_module(cfg)
    model = module.model
    if isinstance(model, FactoredMLP):
        model = module.model = collapsed_twin(model, frame, cfg.train.precision)
    with torch.no_grad():
        for name, param in model.named_parameters():
            key = name.rsplit(".", 1)[-1]
            param.data[0].copy_(torch.from_numpy(frame[FRAME_ARRAYS.get(key, key)]))
    W_a, W_b, W_out = (w[0].float() for w in collapsed_weights(model))
    expected = (frame["W_input"], frame.get("W_input_b", frame["W_input"]), frame["W_output"])
    if not all(torch.equal(w, torch.from_numpy(e)) for w, e in zip((W_a, W_b, W_out), expected)):
        raise RunError(f"{cfg.task}: the trajectory's frame does not give this model's weights")
    module.attach_data(datamodule)
    return module.eval()


def collapsed_twin(model, frame: dict, precision: str):
    """The FactoredMLP that computes what `model` computes from its collapsed weights alone:
    W_input as its embedding (one per input side when untied), W_output as its unembedding."""
    from grok_lightning.model import FactoredMLP

    n = frame["W_input"].shape[-1]
    settings = dataclasses.replace(
        model.cfg,
        d_embed=n,
        n_neurons=n,
        embed="untied" if "W_input_b" in frame else "input_tied",  # its own unembedding either way
        collapsed_hidden=True,
        collapsed_out=True,
        init="torch",
    )
    return FactoredMLP(settings, seeds=[0], p=model.p, precision=precision)

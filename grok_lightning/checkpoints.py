"""A GrokModule back from a trajectory frame (the collapsed weights the explorer draws at that
step), with the run's data attached (so `module.measure()` works at once). A checkpoint's module is
grok_lightning.module.module_from_checkpoint (GrokModule.load_from_checkpoint)."""

from __future__ import annotations

import dataclasses

from omegaconf import DictConfig, OmegaConf, open_dict

from grok_lightning.run_files import RunError

# A collapsed FactoredMLP's weights <- the trajectory arrays that are them (any other model's
# parameters carry the arrays' own names: ParityMLP's W_input, W_output)
FRAME_ARRAYS = {"embed": "W_input", "embed_a": "W_input", "embed_b": "W_input_b", "unembed": "W_output"}


def module_from_frame(cfg: DictConfig, trajectory: dict, index: int):
    """GrokModule of a run at trajectory frame `index`. A frame holds the collapsed weights
    (W_input, W_output, W_input_b when the input sides are untied), which fix what the network
    computes: a factored model comes back as its collapsed twin (a FactoredMLP with collapsed_hidden
    and collapsed_out whose weights are the frame's matrices), any other model with the frame's
    matrices as its parameters. Float32 values, as the frame stores them; no optimiser state and
    no metric history (the run's history is record.history)."""
    import torch

    from grok_lightning.callbacks._base import collapsed_weights
    from grok_lightning.callbacks.trajectory import ARRAYS
    from grok_lightning.model import FactoredMLP
    from grok_lightning.module import build_run_module

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

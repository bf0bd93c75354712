"""A GrokModule back from a run's checkpoint: the model its config builds, the checkpoint's weights
and metric history, the run's data attached (so `module.measure()` works at once)."""

from __future__ import annotations

from pathlib import Path

from grok_lightning.run_files import RunError, config_from, read_checkpoint, read_config


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

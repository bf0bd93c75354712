"""One training run: `python -m grok_lightning.train task=modadd [preset=main] [key=value ...]`.

config -> task (data, model, objective) -> GrokModule + Trainer + callbacks -> fit -> run directory
(config.yaml, metrics.csv, checkpoints/, figures/, wandb/, summary.json).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.tree import Tree

from grok_lightning import config as C
from grok_lightning import outcome, runs
from grok_lightning.module import METRICS, Diverged, GrokModule
from grok_lightning.tasks import TASKS

USAGE = """usage: python -m grok_lightning.train task=<task> [preset=<preset>] [key=value ...]
       python -m grok_lightning.train resume=<run dir> [key=value ...]
tasks: {tasks}. Keys are those of configs/<task>.yaml, e.g.
  optim.weight_decay=0.5 train.max_steps=2000 logger=csv"""


class UsageError(C.ConfigError):
    pass


def split_args(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Pulls task=, preset= and resume= out of the key=value arguments."""
    special, overrides = {}, []
    for arg in argv:
        key = arg.split("=", 1)[0]
        if key in ("task", "preset", "resume") and "=" in arg:
            special[key] = arg.split("=", 1)[1]
        else:
            overrides.append(arg)
    return special, overrides


# Keys a resume may not change: they change the tensors' shapes, the data or the task itself.
FIXED_ON_RESUME = ("data.", "model.", "train.seed", "train.precision")


def resolve_config(argv: Sequence[str]) -> tuple[DictConfig, Optional[Path]]:
    """(validated config, run directory to resume or None). Raises ConfigError."""
    special, overrides = split_args(argv)
    for item in overrides:
        if "${" in item.split("=", 1)[-1]:
            key = item.split("=", 1)[0]
            raise C.ConfigError(f"{key}: interpolations (${{...}}) are not allowed in overrides")
    if "resume" in special:
        cfg, run_dir = _resume_config(special, overrides)
    elif "task" not in special:
        raise UsageError(f"no task given; available tasks: {', '.join(sorted(TASKS))}")
    else:
        cfg, run_dir = C.load(special["task"], special.get("preset"), overrides), None
    check_machine(cfg)
    return cfg, run_dir


def _resume_config(special: dict, overrides: list[str]) -> tuple[DictConfig, Path]:
    run_dir = Path(special["resume"])
    if not runs.is_run_dir(run_dir):
        raise C.ConfigError(f"resume={run_dir}: not a run directory (no config.yaml there)")
    if runs.last_checkpoint(run_dir) is None:
        raise C.ConfigError(f"resume={run_dir}: no checkpoints/last.ckpt to resume from")
    try:
        saved = OmegaConf.load(run_dir / "config.yaml")
    except Exception as exc:  # yaml errors come in many classes
        raise C.ConfigError(f"{run_dir}/config.yaml: unreadable ({str(exc).splitlines()[0]})") from None
    if not isinstance(saved, DictConfig):
        raise C.ConfigError(f"{run_dir}/config.yaml: not a mapping of keys")
    task, preset = saved.get("task"), saved.get("preset")
    if task not in TASKS:
        raise C.ConfigError(f"resume={run_dir}: config.yaml names unknown task {task!r}")
    for key, value in (("task", task), ("preset", preset)):
        if key in special and special[key] != value:
            raise C.ConfigError(f"{key}={special[key]}: the run to resume has {key} {value}")
    cfg = OmegaConf.structured(TASKS[task].config_class)
    cfg = C._merge(cfg, saved, f"{run_dir}/config.yaml")
    layer = C.parse_overrides(overrides)
    cfg = C._merge(cfg, layer, "override")
    cfg.task, cfg.preset = task, preset
    C.validate(cfg)
    for key in _dotted_keys(layer):
        if key.startswith(FIXED_ON_RESUME) and OmegaConf.select(cfg, key) != OmegaConf.select(saved, key):
            raise C.ConfigError(
                f"{key}={OmegaConf.select(cfg, key)} differs from the run's "
                f"{OmegaConf.select(saved, key)}: it changes the model or the task; start a new run"
            )
    return cfg, run_dir


def _dotted_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        keys += _dotted_keys(value, f"{dotted}.") if isinstance(value, DictConfig) else [dotted]
    return keys


def check_machine(cfg: DictConfig) -> None:
    """Refuse, before anything is built or written, what this machine cannot run."""
    acc = cfg.train.accelerator
    if acc in ("gpu", "cuda") and not torch.cuda.is_available():
        raise C.ConfigError(f"train.accelerator={acc}: no CUDA GPU on this machine (use auto or cpu)")
    if acc == "mps" and not torch.backends.mps.is_available():
        raise C.ConfigError("train.accelerator=mps: MPS is not available on this machine (use auto or cpu)")
    if cfg.train.devices != 1:
        raise C.ConfigError(
            f"train.devices={cfg.train.devices}: a single run trains on one device "
            "(a sweep spreads its models over several)"
        )
    need, limit = estimated_bytes(cfg), memory_limit(cfg)
    if need > limit:
        key = _largest_size_key(cfg)
        raise C.ConfigError(
            f"{key}={OmegaConf.select(cfg, key)}: the model and data need ~{need / 2**30:.3g} GiB, "
            f"more than the {limit / 2**30:.3g} GiB of memory here"
        )


SIZE_KEYS = ("data.p", "model.d_embed", "model.n_neurons", "data.n_bits", "data.train_size", "data.test_size")


def estimated_bytes(cfg: DictConfig) -> float:
    """A rough upper bound of a single run's memory: data, activations and logits (forward and
    backward), parameters with gradients and Adam moments; float64 throughout."""
    d, m = cfg.data, cfg.model
    if "p" in d:  # modadd, fixed_embed
        p = d.p
        pairs = p * (p + 1) / 2 if d.symmetric else p * p
        params = 2 * p * m.d_embed + 3 * m.d_embed * m.n_neurons + 2 * p * m.n_neurons
        elements = 3 * pairs * (2 * p + m.n_neurons + p) + 4 * params
    else:  # parity
        rows = d.train_size + d.test_size
        elements = 3 * rows * (d.n_bits + m.n_neurons + 2) + 4 * (d.n_bits + 2) * m.n_neurons
    return 8.0 * elements


def memory_limit(cfg: DictConfig) -> float:
    if cfg.train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(0).total_memory)
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _largest_size_key(cfg: DictConfig) -> str:
    """The size key whose schema default would shrink the estimate most: the one to name."""
    schema = OmegaConf.structured(TASKS[cfg.task].config_class)
    best, best_need = SIZE_KEYS[0], float("inf")
    for key in SIZE_KEYS:
        default = OmegaConf.select(schema, key, default=None)
        if default is None:
            continue
        trial = cfg.copy()
        OmegaConf.update(trial, key, min(default, OmegaConf.select(cfg, key)))
        if (need := estimated_bytes(trial)) < best_need:
            best, best_need = key, need
    return best


def config_tree(cfg: DictConfig) -> Tree:
    tree = Tree(f"[bold]{cfg.task}[/] / preset [bold]{cfg.preset}[/]")

    def add(node: Tree, value) -> None:
        for key, item in value.items():
            if isinstance(item, DictConfig):
                add(node.add(f"[cyan]{key}[/]"), item)
            else:
                node.add(f"{key}: [green]{item}[/]")

    add(tree, cfg)
    return tree


def build_module(
    cfg: DictConfig, seeds: Sequence[int], lr: Sequence[float], weight_decay: Sequence[float], **kw
):
    """The task's data module and a GrokModule training one model per seed."""
    task = TASKS[cfg.task]
    datamodule = task.build_datamodule(cfg, seeds)
    module = GrokModule(
        task.build_model(cfg, seeds),
        task.build_objective(cfg),
        lr=lr,
        weight_decay=weight_decay,
        regularization=cfg.optim.regularization,
        betas=(cfg.optim.beta1, cfg.optim.beta2),
        eps=cfg.optim.eps,
        max_steps=cfg.train.max_steps,
        log_every=C.log_every(cfg),
        steps_per_call=cfg.train.steps_per_call,
        **kw,
    )
    datamodule.n_calls = -(-cfg.train.max_steps // cfg.train.steps_per_call)
    return datamodule, module


def run_summary(cfg: DictConfig, module: GrokModule, k: int = 0) -> dict:
    steps, values = module.history_tensor()
    series = {name: values[:, k, i].tolist() for i, name in enumerate(METRICS)}
    summary = outcome.summarise(
        steps,
        series["train/loss"],
        series["test/loss"],
        series["train/acc"],
        series["test/acc"],
        loss_threshold=cfg.outcome.loss_threshold,
        ratio_threshold=cfg.outcome.ratio_threshold,
    )
    final = {name: s[-1] for name, s in series.items()} if steps else {}
    return {"final": final, "final_step": steps[-1] if steps else None, **summary}


def open_run_dir(cfg: DictConfig, resume_dir: Optional[Path], module: GrokModule):
    """(run directory, its lock) with config.yaml written. A resume is checked first (lock free,
    checkpoint readable and fitting the config's model), so a refused one changes nothing."""
    if resume_dir is not None:
        try:
            lock = runs.lock_run(resume_dir)
        except OSError as exc:
            raise C.ConfigError(f"resume={resume_dir}: {exc}") from None
        try:
            check_checkpoint(runs.last_checkpoint(resume_dir), module)
            runs.atomic_write_text(resume_dir / "config.yaml", C.to_yaml(cfg))
        except BaseException:
            lock.close()
            raise
        return resume_dir, lock
    try:
        run_dir = runs.new_run_dir(cfg.run_root, cfg.task)
    except OSError as exc:
        raise C.ConfigError(f"run_root={cfg.run_root}: cannot create a run directory ({exc})") from None
    try:
        lock = runs.lock_run(run_dir)
        runs.atomic_write_text(run_dir / "config.yaml", C.to_yaml(cfg))
    except OSError as exc:  # e.g. a full disk: leave no half-made run directory behind
        shutil.rmtree(run_dir, ignore_errors=True)
        raise C.ConfigError(f"run_root={cfg.run_root}: cannot write the run directory ({exc})") from None
    return run_dir, lock


def check_checkpoint(path: Path, module: GrokModule) -> None:
    """The checkpoint a resume continues from must load, and fit the model the config builds."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        state = ckpt["state_dict"]
        int(ckpt["global_step"])
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise C.ConfigError(f"{path}: cannot read checkpoint ({msg})") from None
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise C.ConfigError(
            f"{path} does not fit the model of this config: {str(exc).splitlines()[0]}"
        ) from None


def train(cfg: DictConfig, resume_dir: Optional[Path] = None, console: Optional[Console] = None) -> Path:
    """Fit one run and write its directory; summary.json's `status` says how it ended
    (finished / interrupted / diverged). Returns the run directory."""
    from grok_lightning.callbacks import build_callbacks
    from grok_lightning.interrupt import GracefulStop
    from grok_lightning.trainer import build_loggers, build_trainer, finish_loggers

    console = console or Console()
    if cfg.train.flush_denormal:
        torch.set_flush_denormal(True)
    if cfg.train.cpu_threads:
        torch.set_num_threads(cfg.train.cpu_threads)
    # Build everything that can fail on bad input before the run directory exists.
    try:
        datamodule, module = build_module(cfg, [cfg.train.seed], [cfg.optim.lr], [cfg.optim.weight_decay])
    except (ValueError, MemoryError) as exc:
        raise C.ConfigError(str(exc).splitlines()[0]) from None

    run_dir, lock = open_run_dir(cfg, resume_dir, module)  # released when train returns
    console.print(config_tree(cfg))
    console.print(f"run directory: [bold]{run_dir}[/]")
    ckpt = runs.last_checkpoint(run_dir) if resume_dir else None
    resume_step = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] if ckpt else None
    loggers = build_loggers(cfg, run_dir, run_dir.name, resume_step)
    stopper = GracefulStop()
    callbacks = [*build_callbacks(cfg, TASKS[cfg.task], run_dir), stopper]
    trainer = build_trainer(cfg, run_dir, callbacks, loggers)
    start = time.perf_counter()
    status, diverged_at = "finished", None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    except Diverged as exc:
        status, diverged_at = "diverged", exc.step
    if stopper.received is not None:
        status = "interrupted"
    wall = time.perf_counter() - start

    summary = {
        "task": cfg.task,
        "preset": cfg.preset,
        "run_dir": str(run_dir),
        "status": status,
        "steps_trained": trainer.global_step,
        "wall_time_s": round(wall, 2),
        **run_summary(cfg, module),
        **getattr(module, "summary_extra", {}),
    }
    if diverged_at is not None:
        summary["diverged_at_step"] = diverged_at
    runs.write_json(run_dir / "summary.json", summary)
    page = explorer_page(run_dir, loggers, console)
    finish_loggers(loggers, status, summary)
    final = summary["final"]
    if status == "diverged":
        last = runs.last_checkpoint(run_dir)
        console.print(
            f"[red]diverged: the loss is not finite at step {diverged_at}[/]; last good checkpoint: {last}"
        )
    elif status == "interrupted":
        console.print(
            f"[yellow]interrupted at step {trainer.global_step}[/]; checkpoint saved. Resume with:\n"
            f'  make train ARGS="resume={run_dir}"'
        )
    else:
        console.print(
            f"done in {wall:.1f} s: train/acc {final.get('train/acc', float('nan')):.4f}, "
            f"test acc {final.get('test/acc', float('nan')):.4f}  ->  {run_dir}"
        )
    console.print(verdict_lines(summary))
    if page is not None:
        console.print(f"explorer -> {page}")
    return run_dir


def explorer_page(run_dir: Path, loggers: list, console: Console) -> Optional[Path]:
    """Build the run's explorer.html (into W&B too). A page that cannot be built costs one line,
    never the run."""
    from grok_lightning.explorer import log_page_to_wandb, write_run_page

    try:
        page = write_run_page(run_dir)
    except Exception as exc:  # the run's results are already saved
        console.print(
            f"[yellow]explorer page not built[/]: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        )
        return None
    log_page_to_wandb(loggers, page)
    return page


def verdict_lines(summary: dict) -> str:
    """Both verdicts for the console: the accuracy milestones, then the article's phase; a third
    line when they disagree."""
    lines = [
        f"verdict: [bold]{summary['verdict_text']}[/]",
        f"article's rule (phase diagrams): [bold]{summary['outcome']}[/] ({summary['outcome_reason']})",
    ]
    if summary.get("disagreement"):
        lines.append(f"[yellow]verdicts differ[/]: {summary['disagreement']}")
    return "\n".join(lines)


EXIT_CODES = {"finished": 0, "diverged": 1, "interrupted": 130}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        print(USAGE.format(tasks=", ".join(sorted(TASKS))))
        return 0
    try:
        cfg, resume_dir = resolve_config(argv)
        run_dir = train(cfg, resume_dir)
    except C.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the disk filled up mid-run: checkpoints are written atomically
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return EXIT_CODES[json.loads((run_dir / "summary.json").read_text())["status"]]


if __name__ == "__main__":
    sys.exit(main())

"""One training run: `python -m grok_lightning.train task=modadd [preset=main] [key=value ...]`.

The recipe: config -> build (task data, model, GrokModule: module.build_run_module) -> open the
run directory -> fit -> write summary.json and the explorer page -> return the run's record
(grok_lightning.record). The pieces live in modules named for what they hold: module, rundir,
machine, summary, cli_help.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from omegaconf import DictConfig
from rich.console import Console

from grok_lightning import config as C
from grok_lightning import runs
from grok_lightning.cli_help import config_tree, help_text
from grok_lightning.tasks import TASKS

# torch, Lightning and the modules built on them are imported where a run starts: a config error,
# --help and print_config=true answer without them (within ~1 s).

__all__ = ["main", "resolve_config", "split_args", "train"]
SPECIAL = ("task", "preset", "resume", "print_config")  # arguments that are not config keys
EXIT_CODES = {"finished": 0, "diverged": 1, "interrupted": 130}


def split_args(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Pulls task=, preset=, resume= and print_config= out of the key=value arguments."""
    special, overrides = {}, []
    for arg in argv:
        key = arg.split("=", 1)[0]
        if key in SPECIAL and "=" in arg:
            special[key] = arg.split("=", 1)[1]
        else:
            overrides.append(arg)
    return special, overrides


def resolve_config(argv: Sequence[str], check: bool = True) -> tuple[DictConfig, Optional[Path]]:
    """(validated config, run directory to resume or None). Raises ConfigError. check: also check
    the config against this machine (grok_lightning.machine; print_config=true does not)."""
    special, overrides = split_args(argv)
    for item in overrides:
        if "${" in item.split("=", 1)[-1]:
            key = item.split("=", 1)[0]
            raise C.ConfigError(f"{key}: interpolations (${{...}}) are not allowed in overrides")
    if "resume" in special:
        from grok_lightning.rundir import resume_config

        cfg, run_dir = resume_config(special, overrides)
    elif "task" not in special:
        raise C.ConfigError(f"no task given; available tasks: {', '.join(sorted(TASKS))}")
    else:
        cfg, run_dir = C.load(special["task"], special.get("preset"), overrides), None
    if check:
        from grok_lightning.machine import check_machine

        check_machine(cfg)
    return cfg, run_dir


def train(cfg: DictConfig, resume_dir: Optional[Path] = None, console: Optional[Console] = None):
    """Fit one run and write its directory; returns its RunRecord (path-like: the run directory),
    whose summary["status"] says how it ended (finished / interrupted / diverged)."""
    import torch

    from grok_lightning.module import build_run_module
    from grok_lightning.rundir import RunFinished, open_run_dir

    console = console or Console()
    if cfg.train.flush_denormal:
        torch.set_flush_denormal(True)
    if cfg.train.cpu_threads:
        torch.set_num_threads(cfg.train.cpu_threads)
    # Build everything that can fail on bad input before the run directory exists.
    try:
        datamodule, module = build_run_module(cfg)
    except (ValueError, MemoryError) as exc:
        raise C.ConfigError(str(exc).splitlines()[0]) from None

    try:
        run_dir, lock, resume = open_run_dir(cfg, resume_dir, module)
    except RunFinished as done:
        return finished_run(done, console)
    try:
        with lock:  # released however the run ends
            return _fit_and_write(cfg, console, datamodule, module, run_dir, resume)
    except KeyboardInterrupt:
        if resume is None and not runs.last_checkpoint(run_dir):  # nothing trained: leave nothing
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _fit_and_write(cfg: DictConfig, console: Console, datamodule, module, run_dir: Path, resume):
    """Fit in the open run directory, then write its final files whole (signals deferred)."""
    from grok_lightning.callbacks import build_callbacks
    from grok_lightning.early_warning import EarlyWarning
    from grok_lightning.fate import extension_words
    from grok_lightning.interrupt import Deferred, GracefulStop
    from grok_lightning.loggers import build_loggers
    from grok_lightning.module import Diverged
    from grok_lightning.rundir import AsUninterrupted
    from grok_lightning.summary import callbacks_summary, run_summary
    from grok_lightning.trainer import build_trainer

    console.print(config_tree(cfg))
    console.print(f"run directory: [bold]{run_dir}[/]")
    ckpt = runs.last_checkpoint(run_dir) if resume else None
    loggers = build_loggers(cfg, run_dir, run_dir.name, resume)
    stopper = GracefulStop()
    analyses = build_callbacks(cfg, TASKS[cfg.task], run_dir)
    warning = EarlyWarning.for_config(cfg)  # a forecast on the progress line, where one exists
    analyses += [warning] if warning else []
    # after the analyses: they restore their state first (rundir.AsUninterrupted)
    continued = [AsUninterrupted(resume, analyses, cfg.train.steps_per_call)] if resume else []
    trainer = build_trainer(cfg, run_dir, [*analyses, stopper, *continued], loggers)
    start = time.perf_counter()
    status, diverged_at = "finished", None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    except Diverged as exc:
        status, diverged_at = "diverged", exc.step
    if stopper.received is not None:
        status = "interrupted"
    wall = time.perf_counter() - start
    with Deferred() as late:  # the final files are written whole, signal or not
        summary = {
            "task": cfg.task,
            "preset": cfg.preset,
            "run_dir": str(run_dir),
            "status": status,
            "steps_trained": trainer.global_step,
            "extra_steps": max(trainer.global_step - cfg.train.max_steps, 0),
            "extension": extension_words(
                cfg.train.max_steps, trainer.global_step, module.stop_reason[0], module.nominal_fate[0]
            ),
            "wall_time_s": round(wall, 2),
            **run_summary(cfg, module),
            **callbacks_summary(analyses),
        }
        if diverged_at is not None:
            summary["diverged_at_step"] = diverged_at
        record = _write_final_files(cfg, console, module, run_dir, loggers, summary)
    if late.received or stopper.late:
        console.print("a signal came while the final files were written: they were finished first")
    return record


def _write_final_files(cfg: DictConfig, console: Console, module, run_dir: Path, loggers, summary: dict):
    from grok_lightning.loggers import finish_loggers
    from grok_lightning.record import RunRecord
    from grok_lightning.summary import history_of

    runs.write_json(run_dir / "summary.json", summary)
    page = explorer_page(run_dir, loggers, console)
    finish_loggers(loggers, summary["status"], summary)
    console.print(end_lines(summary, summary["wall_time_s"]))
    if page is not None:
        console.print(f"explorer -> {page}")
    return RunRecord(run_dir, cfg, history=history_of(module), summary=summary)


def finished_run(done, console: Console):
    """A finished run resumed with nothing to train (done: rundir.RunFinished): say so, change
    nothing, return its record."""
    from grok_lightning.record import RunRecord
    from grok_lightning.run_files import read_config

    summary = done.summary
    console.print(
        f"{done.run_dir} finished at step {summary['steps_trained']}: nothing to train, no file changed "
        "(raise train.max_steps, or train.step_cap, to train on)"
    )
    if "verdict_text" in summary:  # a summary of this project's runs has both verdicts
        console.print(verdict_lines(summary))
    return RunRecord(done.run_dir, read_config(done.run_dir), summary=summary)


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


def end_lines(summary: dict, wall: float) -> str:
    """How the run ended, then both verdicts."""
    status, run_dir, final = summary["status"], summary["run_dir"], summary["final"]
    if status == "diverged":
        last = runs.last_checkpoint(run_dir)
        head = (
            f"[red]diverged: the loss is not finite at step {summary['diverged_at_step']}[/]; "
            f"last good checkpoint: {last}"
        )
    elif status == "interrupted":
        head = (
            f"[yellow]interrupted at step {summary['steps_trained']}[/]; checkpoint saved. Resume with:\n"
            f'  make train ARGS="resume={run_dir}"'
        )
    else:
        head = (
            f"done in {wall:.1f} s: train/acc {final.get('train/acc', float('nan')):.4f}, "
            f"test acc {final.get('test/acc', float('nan')):.4f}  ->  {run_dir}"
        )
    return f"{head}\n{verdict_lines(summary)}"


def verdict_lines(summary: dict) -> str:
    """Both verdicts for the console: the accuracy milestones, then the article's phase; a third
    line when they disagree."""
    lines = [
        f"verdict: [bold]{summary['verdict_text']}[/]",
        f"article's rule (phase diagrams): [bold]{summary['outcome']}[/] ({summary['outcome_reason']})",
    ]
    if summary.get("fate") and summary["fate"] != "generalised":  # tell "not yet" from "stuck"
        lines.append(f"fate: [bold]{summary['fate']}[/] ({summary['fate_reason']})")
    if summary.get("extra_steps"):
        lines.append(f"budget: {summary['extension']}")
    if summary.get("disagreement"):
        lines.append(f"[yellow]verdicts differ[/]: {summary['disagreement']}")
    return "\n".join(lines)


def wants_print_config(special: dict) -> bool:
    value = special.get("print_config", "false").lower()
    if value not in ("true", "false"):
        raise C.ConfigError(f"print_config={special['print_config']}: expected true or false")
    return value == "true"


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # SIGTERM (a scheduler preempting the job) as Ctrl-C until the run's own handlers take over
    # (grok_lightning.interrupt): before the first step it leaves no run directory behind either
    try:
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    except ValueError:  # not the main thread
        previous = None
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str]) -> int:
    try:
        if any(a in ("-h", "--help", "help") for a in argv):
            print(help_text(split_args(argv)[0].get("task")))
            return 0
        print_only = wants_print_config(split_args(argv)[0])
        cfg, resume_dir = resolve_config(argv, check=not print_only)
        if print_only:
            print(C.to_yaml(cfg), end="")
            return 0
        record = train(cfg, resume_dir)
    except KeyboardInterrupt:  # before the run's own handlers were installed: nothing was kept
        print("interrupted before training started; no run directory kept", file=sys.stderr)
        return 130
    except (C.ConfigError, OSError) as exc:  # OSError: e.g. a full disk (checkpoints are atomic)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return EXIT_CODES[record.summary["status"]]


if __name__ == "__main__":
    sys.exit(main())

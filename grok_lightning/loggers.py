"""A run's loggers: metrics.csv always (continued, not replaced, on resume), W&B online or
offline, never waiting on a network that is not there."""

from __future__ import annotations

import csv
import io
import netrc
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig, OmegaConf

from grok_lightning import runs
from grok_lightning.run_files import complete_csv


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv (and warns about the run directory's
    other files); a resumed run keeps the rows logged before its checkpoint's step S (later ones are
    measured again) and appends to them. Of the rows at S - 1, only those `keep_last_row` accepts
    stay: the resume makes the others again (grok_lightning.rundir.AsUninterrupted). A row cut
    short by a kill (no newline yet) is dropped."""

    def __init__(self, log_dir: str, keep_before_step: int, keep_last_row: Callable[[dict], bool]):
        self.keep_before_step, self.keep_last_row = keep_before_step, keep_last_row
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        header, rows = complete_csv(path)
        self._write_all(header, [r for r in rows if self._keeps(r)])
        self.metrics_keys = header

    def _keeps(self, row: dict) -> bool:
        if not row.get("step"):
            return False
        step = int(float(row["step"]))
        return step < self.keep_before_step - 1 or (
            step == self.keep_before_step - 1 and self.keep_last_row(row)
        )

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        """Lightning rewrites the file in place when a key appears: a kill then would lose it."""
        with open(self.metrics_file_path, newline="") as f:
            rows = list(csv.DictReader(f))
        self._write_all(fieldnames, rows)

    def _write_all(self, header: list[str], rows: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
        runs.atomic_write_text(self.metrics_file_path, buf.getvalue())


class RunCSVLogger(CSVLogger):
    """metrics.csv directly in the run directory; `keep_before_step` (and `keep_last_row`, see
    _ContinuingWriter) continue a resumed run's file."""

    def __init__(
        self,
        run_dir: Path,
        keep_before_step: Optional[int] = None,
        keep_last_row: Callable[[dict], bool] = lambda row: True,
    ):
        super().__init__(save_dir=str(run_dir), name="", version="")
        self.keep_before_step, self.keep_last_row = keep_before_step, keep_last_row

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:  # a new run has no metrics.csv yet: nothing to keep
            self._experiment = _ContinuingWriter(self.log_dir, self.keep_before_step or 0, self.keep_last_row)
        return self._experiment


def wandb_credentials_present() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode() -> str:
    """The user's WANDB_MODE if set; online when credentials exist; otherwise offline (no prompt,
    no network wait). Offline runs upload later with `wandb sync <run dir>/wandb/offline-run-*`."""
    mode = os.environ.get("WANDB_MODE")
    if mode in ("online", "offline", "disabled"):
        return mode
    return "online" if wandb_credentials_present() else "offline"


# W&B may add at most WANDB_PROBE_S + WANDB_INIT_TIMEOUT_S seconds when its server is unreachable
# or silent: the probe asks for an answer, not only a connection, and a server that gives none
# sends the run to W&B's offline mode (local, nothing waits on the network).
WANDB_PROBE_S = 3.0
WANDB_INIT_TIMEOUT_S = 7.0


def _server_answers(host: str, port: int, tls: bool, timeout: float) -> None:
    """Raises unless the server completes a TLS handshake (https) or sends a first byte back to an
    HTTP request (http) within `timeout`: a socket that accepts and never answers fails here."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if tls:
            import ssl

            with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
                return
        sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        if not sock.recv(1):
            raise ConnectionError("closed without answering")


def wandb_unreachable(timeout: Optional[float] = None) -> Optional[str]:
    """None if the W&B server answers within `timeout` seconds (WANDB_PROBE_S), else why not. The
    probe runs in a thread, so a hanging DNS lookup or a silent server cannot hold the run up."""
    timeout = WANDB_PROBE_S if timeout is None else timeout
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host, port = url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)
    result: dict = {}

    def probe() -> None:
        try:
            _server_answers(host, port, url.scheme != "http", timeout)
            result["ok"] = True
        except (OSError, ValueError) as exc:
            result["error"] = str(exc) or type(exc).__name__

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    if result.get("ok"):
        return None
    return f"{host}:{port} unreachable: {result.get('error', f'no answer within {timeout:g} s')}"


def reachable_wandb_mode() -> str:
    """wandb_mode(), offline instead of online when the server does not answer (said in one line):
    the run is kept locally and uploaded later with `wandb sync`."""
    mode = wandb_mode()
    if mode == "online" and (reason := wandb_unreachable()):
        print(f"[grok_lightning] W&B server {reason}; logging offline")
        return "offline"
    return mode


WANDB_ID_FILE = "run_id"  # <run>/wandb/run_id: the W&B run that every start of this run logs into


def stored_wandb_id(run_dir: Path) -> Optional[str]:
    path = Path(run_dir) / "wandb" / WANDB_ID_FILE
    if not path.is_file():
        return None  # a first start, or a run from before the id was stored (it used the folder name)
    return path.read_text().strip() or None


def wandb_line(run_dir: Path, run) -> Optional[str]:
    """The console line naming the W&B run: its URL, or offline its directory and the command that
    uploads it. `wandb sync <run>/wandb` uploads every start of a resumed run (one directory each,
    the same run id) into the one W&B run, in the order they ran."""
    if run.disabled:
        return None
    if run.offline:
        upload = f"wandb sync {Path(run_dir) / 'wandb'}"
        return f"W&B offline run {run.id}: {run.settings.sync_dir}; upload: {upload}"
    return f"W&B run: {run.url}"


def build_loggers(cfg: DictConfig, run_dir: Path, run_id: str, resume=None) -> list[Logger]:
    """run_id names the W&B run at a run's first start; later starts continue the id stored then.
    resume: a resume's grok_lightning.rundir.Resume (its step, the rows at its last step it keeps)."""
    csv_logger = (
        RunCSVLogger(run_dir, resume.step, resume.keeps_last_row) if resume else RunCSVLogger(run_dir)
    )
    loggers: list[Logger] = [csv_logger]
    if cfg.logger == "csv":
        return loggers
    start = time.perf_counter()
    try:
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        mode = reachable_wandb_mode()
        os.environ.setdefault("WANDB_SILENT", "true")  # its banner and footer: wandb_line says it once
        wandb_id = stored_wandb_id(run_dir) or run_id
        wandb_logger = WandbLogger(
            project=cfg.wandb_project,
            name=f"{cfg.task}-{cfg.preset}-{wandb_id}",
            id=wandb_id,
            save_dir=str(run_dir),
            mode=mode,
            resume="allow",
            config=OmegaConf.to_container(cfg, resolve=True),
            settings=wandb.Settings(init_timeout=WANDB_INIT_TIMEOUT_S),
        )
        # Lightning passes anonymous=None, which W&B answers with a deprecation warning at every run
        wandb_logger._wandb_init.pop("anonymous", None)
        run = wandb_logger.experiment  # start it now, so a failure falls back here, not mid-run
        runs.atomic_write_text(Path(run_dir) / "wandb" / WANDB_ID_FILE, f"{run.id}\n")
        loggers.append(wandb_logger)
        if line := wandb_line(run_dir, run):
            print(line)
    except Exception as exc:  # W&B must never stop training
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        line = f"W&B unavailable ({msg}); logging to CSV only (after {time.perf_counter() - start:.1f} s)"
        if cfg.logger == "wandb":
            warnings.warn(line, stacklevel=2)
        else:
            print(f"[grok_lightning] {line}")
    return loggers


# summary.json keys copied into the W&B run summary: both verdicts side by side, the early numbers
# researchers compare (memorise / generalise steps), the fate; and what the model learned: its key
# frequencies and each frequency's neurons (modular addition; absent keys are skipped).
WANDB_SUMMARY_KEYS = {
    "verdicts": (
        "status",
        "verdict",
        "verdict_text",
        "memorise_step",
        "generalise_step",
        "grok_delay_steps",
        "solved_step",
        "outcome",
        "outcome_reason",
        "disagreement",
        "min_train_loss",
        "min_test_loss",
        "max_ratio",
        "fate",
        "fate_reason",
        "stop_reason",
        "extra_steps",
    ),
    "fourier": ("key_frequencies", "frequency_groups"),
}


def wandb_summary(summary: dict) -> dict:
    """summary.json's keys of WANDB_SUMMARY_KEYS under their W&B names (verdicts/..., fourier/...)."""
    return {
        f"{section}/{key}": summary[key]
        for section, keys in WANDB_SUMMARY_KEYS.items()
        for key in keys
        if summary.get(key) is not None
    }


def finish_loggers(loggers: list[Logger], status: str, summary: Optional[dict] = None) -> None:
    """Flush every logger; end the W&B run, which WandbLogger leaves open (a later run in the same
    process would otherwise log into it), after copying the run's verdicts into its summary. An
    offline W&B run's media that duplicate the run directory's files become hard links to them."""
    for logger in loggers:
        logger.finalize("success" if status == "finished" else "failed")
        if type(logger).__name__ == "WandbLogger":
            run = logger.experiment
            run.summary.update(wandb_summary(summary or {}))
            files, offline = Path(run.dir), run.settings.mode == "offline"
            run.finish(exit_code=0 if status == "finished" else 1)
            if offline and logger.save_dir:  # its figures and page: links to the run dir's, not copies
                try:
                    runs.link_copies(files, logger.save_dir)
                except OSError:  # only disk space at stake: the copies stay
                    pass

"""Ctrl-C and SIGTERM (a cluster preempting the job) end a run cleanly: the current training_step
call finishes, the run's checkpoint callback (trainer.RunCheckpoint, on_train_end) saves last.ckpt
at that exact step, and the run can be resumed to the same metrics as an uninterrupted one. A
kill -9 cannot be caught: the resume then continues from the last periodic checkpoint.

At the edges (grok_lightning.train): a signal before the run directory exists, or before its first
step, leaves no directory (exit 130); one after the last step, while the final figures, summary and
page are written, is noted and the files are finished (exit 0: the run is complete)."""

from __future__ import annotations

import signal

import lightning as L

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop(L.Callback):
    """Installed after Lightning's own handlers (on_train_start), restored when training ends."""

    def __init__(self):
        self.received: int | None = None
        self.late: int | None = None  # a signal after the last step: the run still ends "finished"
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self._trained_out():  # training is over, the final files are being written: finish them
            self.late = signum
            return
        if self.received is not None:  # a second Ctrl-C: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.received = signum
        self._module.stop_requested = True

    def _trained_out(self) -> bool:
        m = self._module
        return m.all_stopped or m.trainer.global_step >= m.max_steps

    def on_train_start(self, trainer, pl_module) -> None:
        self._module = pl_module
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        except ValueError:  # not the main thread: leave signals alone
            self._previous = {}

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()


class Deferred:
    """`with Deferred() as d:` SIGINT and SIGTERM are noted (d.received), not acted on, until the
    block ends: the final files of a finished run are written whole, whatever the user presses."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "Deferred":
        def note(signum, frame):
            self.received = signum

        try:
            self._previous = {s: signal.signal(s, note) for s in SIGNALS}
        except ValueError:  # not the main thread
            self._previous = {}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

"""GrokModule: trains K independent models at once on full-batch data (one run is K = 1), or on
minibatches where train.batch_size sets them (grok_lightning.tasks.datamodule draws their order).

Manual optimisation runs `steps_per_call` optimiser steps per training_step, which cuts
Lightning's per-step overhead; `trainer.global_step` still counts optimiser steps. Metrics are
measured after update s (0-based) for s % log_every == 0 and at the last step, the original
notebooks' convention ("step 0" = after the first update); as there, train/loss is the loss that
update s was computed from (before it), accuracies, test/loss and norms are measured after it
(with minibatches train/loss too, on the whole training set). They are kept on the device as a
history [n_logged, K, n_metrics] and sent to the loggers at that cadence only. train.compile sends
the forward and loss through torch.compile where that pays (compile_pays); measurements stay eager.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from grok_lightning import config as C
from grok_lightning import outcome
from grok_lightning.fate import EARLY_STOP_ACC, Budget, Fate
from grok_lightning.optim import BatchedAdam
from grok_lightning.run_files import RunError, config_from, read_checkpoint, read_config
from grok_lightning.schema import OptimConfig
from grok_lightning.tasks import TASKS


class Diverged(RuntimeError):
    """A single run's loss became NaN or Inf; `step` is the first update that produced it."""

    def __init__(self, step: int):
        super().__init__(f"loss is not finite at step {step}: the run diverged")
        self.step = step


METRICS = ("train/loss", "train/acc", "test/loss", "test/acc", "gap/loss", "weights/l1", "weights/l2")


class GrokModule(L.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        objective: Any,
        *,
        lr: Sequence[float],
        weight_decay: Sequence[float],
        regularization: str = "l2",
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-8,
        max_steps: int,
        log_every: int,
        steps_per_call: int = 1,
        model_labels: Optional[Sequence[str]] = None,
        budget: Optional[Budget] = None,
        optim_options: Optional[dict] = None,  # BatchedAdam's grokfast* and warmup_steps (build_module)
        compile_step: bool = False,  # forward and loss through torch.compile (train.compile, build_module)
    ):
        super().__init__()
        self.automatic_optimization = False
        self.model, self.objective = model, objective
        self.lr, self.weight_decay = list(lr), list(weight_decay)
        self.regularization, self.betas, self.eps = regularization, tuple(betas), eps
        self.optim_options = dict(optim_options or {})
        # max_steps: the nominal budget; the loop runs to the budget's cap (grok_lightning.fate)
        self.budget = budget or Budget(nominal=max_steps, cap=max_steps, margin=max_steps, window=max_steps)
        self.nominal, self.max_steps = self.budget.nominal, self.budget.cap
        self.log_every, self.steps_per_call = log_every, steps_per_call
        self.n_models = len(self.lr)
        # per model: why and after which update it stopped (a stopped model of a batch is frozen)
        self.stop_reason: list[Optional[str]] = [None] * self.n_models
        self.stopped_at: list[Optional[int]] = [None] * self.n_models
        self.nominal_fate: list[Optional[Fate]] = [None] * self.n_models  # judged at the nominal budget
        self.latest_fate: Optional[Fate] = None  # model 0's fate at the last logged step
        # Loggers get plain metric names for one model, "<name>/<label>" for several.
        self.model_labels = list(model_labels) if model_labels else [str(k) for k in range(self.n_models)]
        self.history_steps: list[int] = []
        self.history: list[torch.Tensor] = []  # each [K, len(METRICS)], on the device
        self.latest: dict[str, float] = {}  # model 0's last logged metrics, for the progress bar
        self.data: dict[str, tuple] = {}
        self.batch_indices: Optional[Callable[[int], Optional[torch.Tensor]]] = None  # minibatches
        self.stop_requested = False  # set by a signal handler: stop at the end of this call
        self.config_yaml: Optional[str] = None  # the run's config, saved in checkpoints (build_module)
        self._derived: dict = {}  # results of the history as it is now; see _derived_cache
        self._derived_for: tuple = (None, 0)
        self._stacked: tuple = (None, None)  # (history list, its stack so far)
        self.compile_step = compile_step  # False again once compiling failed (compile_failed)
        self.direct_backward = False  # set at the start of a fit (backward_hooks_unused)

    # ------------------------------------------------------------------------------ data
    def on_fit_start(self) -> None:
        self.attach_data(self.trainer.datamodule)

    def on_train_start(self) -> None:
        # a resumed run replays the budget's decisions from its restored history
        self.replay_decisions()
        self.direct_backward = backward_hooks_unused(self.trainer)

    def attach_data(self, dm) -> None:
        """Encode and move the full data set to the model's device, once."""
        device = self.device
        to = lambda ts: tuple(t.to(device) for t in ts)  # noqa: E731
        self.data = {
            "train": (self.model.encode(*to(dm.train_inputs)), dm.train_targets.to(device)),
            "test": (self.model.encode(*to(dm.test_inputs)), dm.test_targets.to(device)),
        }
        self.batch_indices = dm.batch_indices if dm.batch_size else None
        self.model_rows = torch.arange(self.n_models, device=device)[:, None]  # gathers minibatches

    def train_batch(self, step: int) -> tuple[tuple, torch.Tensor]:
        """(encoded inputs, targets) that update `step` trains on: the whole set, or its minibatch."""
        inputs, targets = self.data["train"]
        if self.batch_indices is None:
            return inputs, targets
        idx = self.batch_indices(step).to(targets.device)
        return tuple(t[self.model_rows, idx] for t in inputs), targets[self.model_rows, idx]

    # ------------------------------------------------------------------------------ training
    def configure_optimizers(self):
        return BatchedAdam(
            self.model.parameters(),
            lr=self.lr,
            weight_decay=self.weight_decay if self.regularization != "none" else [0.0] * self.n_models,
            betas=self.betas,
            eps=self.eps,
            decay=self.regularization,
            **self.optim_options,
        )

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        first = self.global_step
        losses = []
        for _ in range(min(self.steps_per_call, self.max_steps - first)):
            if self.all_stopped:
                break
            step = self.global_step  # index of the update about to happen
            loss = self.loss_and_gradients(opt, *self.train_batch(step))
            opt.step()
            losses.append(loss.detach())
            if self.is_logged(step):  # a minibatch's loss is not the set's: measured after the update
                self.record(step, loss.detach() if self.batch_indices is None else None)
                self.decide(step)
        if self.all_stopped:
            self.trainer.should_stop = True
        if not losses:
            return
        # One host sync per call, not per step. In a batch of models a diverged one is only marked
        # (its NaNs stay in its own slice); a single run stops before a checkpoint can save NaNs.
        if self.n_models == 1:
            finite = torch.isfinite(torch.stack(losses))
            if not bool(finite.all()):
                raise Diverged(first + int((~finite).nonzero()[0, 0]))
        if self.stop_requested:
            self.trainer.should_stop = True

    def loss_and_gradients(self, opt, inputs, targets) -> torch.Tensor:
        """Per-model loss [K] of the weights as they are, and its gradients in place: through the
        compiled forward and loss (and its backward graph) when this module compiles, eagerly
        otherwise. A compile that fails prints one line and this process trains eagerly."""
        if self.compile_step and compile_failure is None:
            try:  # the backward inside: inductor compiles it at its first call
                return self._backward(opt, compiled_loss()(self.model, self.objective, *inputs, targets))
            except torch.cuda.OutOfMemoryError:  # the calibration's signal: too many models
                raise
            except Exception as exc:
                compile_failed(exc)
        self.compile_step = False
        return self._backward(opt, _loss_of(self.model, self.objective, *inputs, targets))

    def _backward(self, opt, loss: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        total = loss.sum()  # models are independent: the sum's gradient splits
        if self.direct_backward:  # what manual_backward would do here, without its hook dispatch
            total.backward()
        else:
            self.manual_backward(total)
        return loss

    # ------------------------------------------------------------------------------ budget
    def is_logged(self, step: int) -> bool:
        """Logged steps: the cadence, the last nominal step (where the budget decides) and the cap's."""
        return step % self.log_every == 0 or step in (self.nominal - 1, self.max_steps - 1)

    @property
    def all_stopped(self) -> bool:
        return all(r is not None for r in self.stop_reason)

    def fate(self, k: int = 0, upto: Optional[int] = None) -> Fate:
        """Model k's fate from its logged history (the first `upto` rows; default all)."""
        steps, values = self.history_tensor()
        n = len(steps) if upto is None else upto
        col = lambda name: values[:n, k, METRICS.index(name)].numpy()  # noqa: E731
        return self.budget.fate_of(steps[:n], col("train/acc"), col("test/acc"), col("test/loss"))

    def decide(self, step: int, upto: Optional[int] = None) -> None:
        """At a logged step: each running model's fate, and whether the budget stops it here. A
        stopped model of a batch trains on frozen (lr and decay 0), its numbers unchanged; the run
        ends when every model has stopped."""
        if self.n_models == 1 and self.trainer_attached:
            self.latest_fate = self.fate(0, upto)
        if step + 1 < self.nominal and not self.budget.early:
            return
        for k in range(self.n_models):
            if self.stop_reason[k] is not None:
                continue
            f = self.latest_fate if self.n_models == 1 and self.latest_fate else self.fate(k, upto)
            if self.nominal_fate[k] is None and step + 1 >= self.nominal:  # why it trained on
                self.nominal_fate[k] = f
            reason = self.budget.decide(step, f, self.accurate_at(k, upto) if self.budget.early else None)
            if reason is not None:
                self.stop_reason[k], self.stopped_at[k] = reason, step
                if self.n_models > 1:
                    self._optimizer().freeze(k)

    def accurate_at(self, k: int, upto: Optional[int] = None) -> Optional[int]:
        """The first logged step (of the first `upto` rows) at which model k's test accuracy reached
        the early rule's threshold, or None."""
        steps, values = self.history_tensor()
        n = len(steps) if upto is None else upto
        acc = values[:n, k, METRICS.index("test/acc")].tolist()
        return outcome.first_step_at_or_above(steps[:n], acc, EARLY_STOP_ACC)

    @property
    def trainer_attached(self) -> bool:
        return self._trainer is not None

    def _optimizer(self) -> BatchedAdam:
        opt = self.optimizers()
        return getattr(opt, "optimizer", opt)

    def replay_decisions(self) -> None:
        """The decisions of every logged step so far, in order (a pure function of the history)."""
        self.stop_reason, self.stopped_at = [None] * self.n_models, [None] * self.n_models
        self.nominal_fate = [None] * self.n_models
        for i, step in enumerate(self.history_steps):
            if self.budget.early or step + 1 >= self.nominal or i == len(self.history_steps) - 1:
                self.decide(step, upto=i + 1)

    def rows_of(self, k: int) -> int:
        """Logged rows that belong to model k: up to the step it stopped at (a frozen model's later
        rows repeat its numbers)."""
        if self.stopped_at[k] is None:
            return len(self.history_steps)
        return self.history_steps.index(self.stopped_at[k]) + 1

    # ------------------------------------------------------------------------------ metrics
    @torch.no_grad()
    def measure(self, train_loss: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Every metric of METRICS for each model: [K, len(METRICS)], on the device. train_loss:
        the loss the last update was computed from (the original's logged value); default: now."""
        cols = []
        for split in ("train", "test"):
            inputs, targets = self.data[split]
            logits = self.model(*inputs)
            cols += [
                self.objective.loss(logits, targets),
                self.objective.accuracy(logits, targets).to(logits.dtype),
            ]
        if train_loss is not None:
            cols[0] = train_loss
        cols.append(cols[2] - cols[0])
        l1 = sum(w.abs().flatten(1).sum(1, dtype=torch.float64) for w in self.model.parameters())
        l2 = sum(w.square().flatten(1).sum(1, dtype=torch.float64) for w in self.model.parameters()).sqrt()
        cols += [l1, l2]
        return torch.stack([c.to(torch.float64) for c in cols], dim=1)

    def record(self, step: int, train_loss: Optional[torch.Tensor] = None) -> None:
        values = self.measure(train_loss)
        self.history_steps.append(step)
        self.history.append(values)
        rows = values.tolist()  # one host copy per logged step
        self.latest = dict(zip(METRICS, rows[0]))
        if self.n_models == 1:
            metrics = dict(self.latest)
        else:
            metrics = {
                f"{name}/{label}": row[i]
                for label, row in zip(self.model_labels, rows)
                for i, name in enumerate(METRICS)
            }
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)

    def _derived_cache(self) -> dict:
        """Results computed from the history, dropped when it grows or is replaced (a checkpoint
        load, the report): the list itself and its length name one history."""
        owner, length = self._derived_for
        if owner is not self.history or length != len(self.history):
            self._derived_for, self._derived = (self.history, len(self.history)), {}
        return self._derived

    def history_tensor(self) -> tuple[list[int], torch.Tensor]:
        """(steps, values [n_logged, K, len(METRICS)]) on the CPU; stacked once per new logged step
        and shared by every caller, so treat it as read-only."""
        if not self.history:
            return [], torch.empty(0, self.n_models, len(METRICS), dtype=torch.float64)
        cache = self._derived_cache()
        if "stacked" not in cache:
            # appended rows extend the last stack (the budget asks at every logged step)
            owner, old = self._stacked
            n = 0 if owner is not self.history or old is None else min(len(old), len(self.history))
            new = [h.cpu() for h in self.history[n:]]
            cache["stacked"] = (
                torch.cat([old[:n], *([torch.stack(new)] if new else [])]) if n else torch.stack(new)
            )
            self._stacked = (self.history, cache["stacked"])
        return list(self.history_steps), cache["stacked"]

    def metric_series(self, name: str, k: int = 0) -> list[float]:
        _, values = self.history_tensor()
        return values[:, k, METRICS.index(name)].tolist()

    def verdicts(
        self, k: int = 0, *, loss_threshold: float, ratio_threshold: float, loss_floor: float = 0.0
    ) -> dict:
        """Model k's two verdicts over the logged history (outcome.summarise), computed once per
        history: the callbacks' figure marks and the run summary all ask at the end of a run."""
        n = self.rows_of(k)
        key = ("verdicts", k, n, loss_threshold, ratio_threshold, loss_floor)
        steps, values = self.history_tensor()
        cache = self._derived_cache()
        if key not in cache:
            col = {name: values[:n, k, i].tolist() for i, name in enumerate(METRICS)}
            cache[key] = outcome.summarise(
                steps[:n],
                col["train/loss"],
                col["test/loss"],
                col["train/acc"],
                col["test/acc"],
                loss_threshold=loss_threshold,
                ratio_threshold=ratio_threshold,
                loss_floor=loss_floor,
            )
            at_nominal = self.nominal_fate[k]
            cache[key].update(
                self.fate(k, n).as_dict(),
                stop_reason=self.stop_reason[k],
                fate_at_nominal=None if at_nominal is None else at_nominal.fate,
                fate_at_nominal_reason=None if at_nominal is None else at_nominal.reason,
            )
        return dict(cache[key])

    # ------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        steps, values = self.history_tensor()
        checkpoint["grok_history"] = {"steps": steps, "values": values}
        if self.config_yaml is not None:  # lets load_from_checkpoint rebuild the model anywhere
            checkpoint["grok_config"] = self.config_yaml

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("grok_history")
        if saved:
            self.history_steps = list(saved["steps"])
            self.history = list(saved["values"].unbind(0))

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, **kwargs) -> "GrokModule":
        """The GrokModule saved in a run's checkpoint (last.ckpt or step=<N>.ckpt), its weights and
        metric history restored and its data attached. The model is rebuilt from the config the
        checkpoint carries, or from the run's config.yaml beside checkpoints/ for older ones."""
        if kwargs:
            raise TypeError(f"GrokModule.load_from_checkpoint takes no {', '.join(sorted(kwargs))}")
        return module_from_checkpoint(checkpoint_path, map_location=map_location)


# ------------------------------------------------------------------ a GrokModule from a config
# (here, beside the class, so that GrokModule.load_from_checkpoint needs no module above this one)
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
        budget=C.budget(cfg),
        optim_options=optim_options(cfg),
        compile_step=compiles(cfg),
        **kw,
    )
    module.config_yaml = C.to_yaml(cfg)
    datamodule.n_calls = -(-module.max_steps // cfg.train.steps_per_call)  # up to the budget's cap
    datamodule.batch_size = int(OmegaConf.select(cfg, "train.batch_size", default=0))
    return datamodule, module


# BatchedAdam's options from cfg.optim; a config older than these keys gets the schema's defaults (off)
OPTIM_OPTIONS = ("grokfast", "grokfast_alpha", "grokfast_lamb", "grokfast_window", "warmup_steps")


def optim_options(cfg: DictConfig) -> dict:
    """cfg.optim's Grokfast filter and warmup settings, as BatchedAdam takes them."""
    off = OptimConfig()
    return {k: OmegaConf.select(cfg, f"optim.{k}", default=getattr(off, k)) for k in OPTIM_OPTIONS}


# ------------------------------------------------------------------ torch.compile (train.compile)
# train.compile=auto compiles where benchmarks/compiled.py measured that it pays (docs/experiments.md,
# "Compiled groups"): parity at float32 whose one model takes at least COMPILE_MIN_MULTIPLY_ADDS
# multiply-adds a step (train_size x (n_bits + 1) x n_neurons; 1.1-1.3x at 0.74M-0.99M, 1.6x at
# 2.5M, 2.2x at 14M, 1.03-1.09x at 0.5M), in runs of at least COMPILE_MIN_STEPS steps (a compile
# costs 2-13 s fresh, ~3 s in a new process from inductor's disk cache). The choice depends on the
# group's shape, never on K: a model trains the same way alone and in any batch of its group
# (compiled results do not depend on K either, with the padding copy).
COMPILE_MIN_MULTIPLY_ADDS = 700_000
COMPILE_MIN_STEPS = 5_000
COMPILE_TASKS = {"parity": lambda cfg: cfg.data.train_size * (cfg.data.n_bits + 1) * cfg.model.n_neurons}
# YAML reads an unquoted on / off as a boolean, which the str key stores as "True" / "False"
COMPILE_SPELLINGS = {"True": "on", "False": "off"}
# $GROK_COMPILE_BACKEND: another torch.compile backend (eager, aot_eager: graph capture only, for tests)
COMPILE_BACKEND_ENV = "GROK_COMPILE_BACKEND"
compile_failure: Optional[str] = None  # why compiling failed in this process; it then trains eagerly
_compiled: dict[str, Callable] = {}  # backend -> the compiled _loss_of


def multiply_adds(cfg: DictConfig) -> Optional[int]:
    """One model's forward multiply-adds over its training set, for the tasks auto may compile."""
    count = COMPILE_TASKS.get(cfg.task)
    return None if count is None else int(count(cfg))


def compile_pays(cfg: DictConfig) -> bool:
    """train.compile=auto's rule: where the bench measured compiled steps faster (a pure function of
    the config: the group's shape, precision and step count)."""
    work = multiply_adds(cfg)
    return (
        work is not None
        and work >= COMPILE_MIN_MULTIPLY_ADDS
        and cfg.train.precision == "32"
        and cfg.train.max_steps >= COMPILE_MIN_STEPS
    )


def compiles(cfg: DictConfig) -> bool:
    """Whether a module of this config trains through torch.compile (train.compile: auto, on, off;
    configs from before the key: auto)."""
    choice = str(OmegaConf.select(cfg, "train.compile", default="auto"))
    choice = COMPILE_SPELLINGS.get(choice, choice)
    return choice == "on" or (choice == "auto" and compile_pays(cfg))


def backward_hooks_unused(trainer) -> bool:
    """Whether manual_backward would only dispatch hooks that nobody overrides: one device, the
    plain float32 precision plugin, and no callback or module hook around the backward. Then
    loss.backward() is the same computation without two hook rounds per optimiser step (~70 us of a
    ~2.5 ms main-preset step on this 2-core CPU: the bench's overhead row)."""
    from lightning.pytorch.plugins.precision import Precision
    from lightning.pytorch.strategies import SingleDeviceStrategy

    if type(trainer.strategy) is not SingleDeviceStrategy or type(trainer.precision_plugin) is not Precision:
        return False
    hooks = ("on_before_backward", "on_after_backward")
    module = type(trainer.lightning_module)
    if any(getattr(module, h) is not getattr(L.LightningModule, h) for h in (*hooks, "backward")):
        return False
    return all(getattr(type(cb), h) is getattr(L.Callback, h) for cb in trainer.callbacks for h in hooks)


def _loss_of(model, objective, *tensors):
    """Per-model loss of encoded inputs (tensors[:-1]) against targets (tensors[-1])."""
    return objective.loss(model(*tensors[:-1]), tensors[-1])


def compile_cache_dir() -> Path:
    """Inductor's on-disk caches (FX graphs, AOT autograd), kept across runs and batches:
    $TORCHINDUCTOR_CACHE_DIR if set to a folder of one's own, else inductor/ in $GROK_CACHE_DIR
    (default ~/.cache/grok_lightning, as the sweep's calibration cache) rather than inductor's
    default in /tmp. (Importing torch._dynamo sets the variable to that default.)"""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if given and os.path.abspath(given) != os.path.abspath(default_cache_dir()):
        return Path(given)
    root = os.environ.get("GROK_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "grok_lightning"
    )
    return Path(root) / "inductor"


def compiled_loss(backend: Optional[str] = None) -> Callable:
    """_loss_of through torch.compile, one per backend and process. The model is an argument, not a
    constant: a new model of a shape compiled before (the next batch of a group) reuses that code,
    guarded by its parameters' shapes; each new shape (or K) compiles once, from inductor's disk cache
    when an earlier run compiled it. Static shapes (dynamic=False): a shape change recompiles rather
    than making a dynamic graph."""
    backend = backend or os.environ.get(COMPILE_BACKEND_ENV) or "inductor"
    if backend not in _compiled:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(compile_cache_dir())
        # every group shape and K of a sweep worker is one entry of _loss_of's cache (8 by default,
        # after which dynamo would silently run the new shapes eagerly)
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
        torch._dynamo.config.fail_on_recompile_limit_hit = True
        _compiled[backend] = torch.compile(_loss_of, backend=backend, dynamic=False)
    return _compiled[backend]


def compile_failed(exc: BaseException) -> None:
    """Say once why compiling failed; every module of this process trains eagerly from now on."""
    global compile_failure
    if compile_failure is None:
        compile_failure = one_line_reason(exc)
        print(f"torch.compile failed, training eagerly: {compile_failure}", file=sys.stderr, flush=True)


def one_line_reason(exc: BaseException) -> str:
    """The first line of what went wrong, at its origin: dynamo wraps a backend's own error (e.g.
    a C++ compiler that is missing) in BackendCompilerFailed, whose first line names only the backend."""
    root = exc
    while getattr(root, "inner_exception", None) is not None or root.__cause__ is not None:
        root = getattr(root, "inner_exception", None) or root.__cause__
    lines = str(root).strip().splitlines()
    reason = f"{type(root).__name__}: {lines[0] if lines else 'no message'}"
    return reason if root is exc else f"{type(exc).__name__}, {reason}"


def build_run_module(cfg: DictConfig):
    """build_module for the single model of a run: its seed, learning rate and weight decay."""
    return build_module(cfg, [cfg.train.seed], [cfg.optim.lr], [cfg.optim.weight_decay])


def module_from_checkpoint(path, map_location=None, ckpt: dict | None = None):
    """GrokModule of the run whose checkpoint `path` is (checkpoints/<name>.ckpt of a run), with the
    run's data attached: the model its config builds, the checkpoint's weights and metric history."""
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

"""train.compile: what auto picks (a pure function of the config), the compiled path's plumbing with
torch.compile's cheap `eager` backend (graph capture only: the numbers equal eager ones, so resume
and checkpoints are checked exactly), a failed compile that falls back, and (slow) inductor against
eager on a small parity batch, within the tolerance of docs/experiments.md, "Compiled groups"."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from grok_lightning import config as C
from grok_lightning import module as M
from grok_lightning import sweep as S
from grok_lightning.sweep import batch as SB
from grok_lightning.sweep.batch import padded
from grok_lightning.train import main
from tests.conftest import callbacks_off, only_run, read_csv_rows, short_run_args

CPU = torch.device("cpu")


def _parity(n_neurons: int, train_size: int, steps: int = 20_000, *extra: str):
    overrides = [f"model.n_neurons={n_neurons}", f"data.train_size={train_size}", f"train.max_steps={steps}"]
    return C.load("parity", None, [*overrides, *extra])


def test_auto_compiles_the_large_parity_groups_and_leaves_the_rest_eager():
    # the sweep's largest groups and the parity default (128 x 1,200) compile, at any K
    for shape in [(258, 1750), (128, 1250), (64, 1250), (32, 750), (16, 1750)]:
        assert M.compile_pays(_parity(*shape)) and M.compiles(_parity(*shape)), shape
    assert M.multiply_adds(_parity(258, 1750)) == 1750 * 31 * 258
    assert not M.compiles(_parity(16, 1000))  # 0.5M multiply-adds: no gain alone
    assert not M.compiles(_parity(258, 1750, 1000))  # too short to win back the compile
    assert not M.compiles(_parity(258, 1750, 20_000, "train.precision=64"))  # only float32 was measured
    main_preset = C.load("modadd", "main")
    assert main_preset.train.compile == "auto" and not M.compiles(main_preset)  # 0.9-1.2x: eager
    # on and off override the rule both ways; YAML's on / off arrive as booleans
    assert M.compiles(C.load("modadd", "main", ["train.compile=on"]))
    assert M.compiles(_parity(16, 200, 10, "train.compile=on"))
    assert not M.compiles(_parity(258, 1750, 20_000, "train.compile=off"))
    assert M.compiles(_parity(16, 200, 10, "train.compile='on'"))
    with pytest.raises(C.ConfigError, match="train.compile"):
        _parity(16, 200, 10, "train.compile=sometimes")
    # a config saved before the key existed: auto
    old = OmegaConf.create(OmegaConf.to_container(_parity(258, 1750)))
    del old.train["compile"]
    assert M.compiles(old)


TINY_PARITY = [
    "task=parity",
    "data.n_bits=8",
    "data.k=2",
    "data.train_size=64",
    "data.test_size=32",
    "model.n_neurons=8",
    "train.log_every=10",
    "train.checkpoint_every=50",
]


@pytest.fixture
def eager_backend(monkeypatch):
    """torch.compile with the eager backend, and a count of the compiled calls."""
    monkeypatch.setenv(M.COMPILE_BACKEND_ENV, "eager")
    monkeypatch.setattr(M, "compile_failure", None)
    calls = []
    real = M.compiled_loss

    def counted(backend=None):
        calls.append(backend)
        return real(backend)

    monkeypatch.setattr(M, "compiled_loss", counted)
    return calls


def _metrics(run_dir) -> list[dict]:
    keep = ("step", *M.METRICS)
    return [{k: r[k] for k in keep} for r in read_csv_rows(run_dir / "metrics.csv") if r.get("train/loss")]


def test_a_compiled_run_resumes_and_checkpoints_as_an_eager_one(tmp_path, eager_backend):
    args = [*TINY_PARITY, *callbacks_off()]
    eager_root, compiled_root = tmp_path / "eager", tmp_path / "compiled"
    assert main([*short_run_args(eager_root, *args), "train.compile=off", "train.max_steps=100"]) == 0
    assert not eager_backend
    assert main([*short_run_args(compiled_root, *args), "train.compile=on", "train.max_steps=50"]) == 0
    first_leg = len(eager_backend)
    assert first_leg == 50  # one compiled forward per step
    run_dir = only_run(compiled_root, "parity")
    assert main([f"resume={run_dir}", "train.max_steps=100"]) == 0
    assert len(eager_backend) == 100  # the resumed leg compiles too (the config it saved says on)
    eager_dir = only_run(eager_root, "parity")
    # graph capture alone changes no number: every logged metric equals the eager run's
    resumed = [r for r in _metrics(run_dir) if r["step"] != "49"]  # the first leg's last step
    assert len(resumed) == 11 and resumed == _metrics(eager_dir)  # steps 0, 10, ..., 90, 99
    # checkpoints hold the same entries and weights under the same names (no compiled wrapper's)
    eager_ckpt = torch.load(eager_dir / "checkpoints/last.ckpt", weights_only=False)
    compiled_ckpt = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)
    assert compiled_ckpt.keys() == eager_ckpt.keys()
    assert compiled_ckpt["state_dict"].keys() == eager_ckpt["state_dict"].keys()
    for name, value in eager_ckpt["state_dict"].items():
        assert torch.equal(compiled_ckpt["state_dict"][name], value), name


def _broken(gm, example_inputs):
    raise RuntimeError("no C++ compiler here\nsecond line of a long story")


def _tiny_batch(compile_value: str):
    cfg = C.load("parity", None, [*TINY_PARITY[1:], "train.max_steps=30", f"train.compile={compile_value}"])
    models = [S.Model(id=str(s), point=0, seed=s, lr=cfg.optim.lr, weight_decay=0.1) for s in (0, 1)]
    return cfg, padded(models)


def test_a_failed_compile_prints_one_line_and_trains_eagerly(monkeypatch, capsys):
    monkeypatch.setattr(M, "compile_failure", None)
    tried = []
    broken = torch.compile(M._loss_of, backend=_broken, dynamic=False)
    monkeypatch.setattr(M, "compiled_loss", lambda backend=None: tried.append(1) or broken)
    cfg, models = _tiny_batch("on")
    fallen, _ = SB.fit_batch(cfg, models, CPU)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "torch.compile" in line]
    assert len(lines) == 1 and lines[0].startswith("torch.compile failed, training eagerly: "), err
    assert lines[0].endswith("RuntimeError: no C++ compiler here")
    assert "Traceback" not in err and not fallen.compile_step
    eager, _ = SB.fit_batch(_tiny_batch("off")[0], models, CPU)
    assert torch.equal(fallen.history_tensor()[1], eager.history_tensor()[1])
    # the process does not try again: the next batch trains eagerly without a word
    SB.fit_batch(cfg, models, CPU)
    assert len(tried) == 1 and "torch.compile" not in capsys.readouterr().err


# --------------------------------------------------------------------------- inductor (slow)
# Compiled and eager runs are not bitwise equal: inductor fuses the ReLU, the one-logit product and
# the loss into its own kernels and reorders their floating-point reductions (the mean over examples,
# the gradients' sums over them), so every update differs in its last bits, and training amplifies
# such differences as it amplifies any. Eager training differs from itself as much when only a
# kernel's rounding changes: measured on this batch over its 1,500 steps, compiled against eager at
# most 0.018 in an accuracy, 0.011 in a loss, 1.6% in a weight norm, and the same five models trained
# eagerly alone without their padding copy (torch.mm's rounding instead of torch.bmm's) against the
# batch: the same maxima. TOLERANCE leaves room above that; outcome class, memorise and generalise
# steps agree exactly.
TOLERANCE = {
    "accuracy": 0.05,  # absolute, a fraction of the examples
    "loss": 0.05,  # absolute, on the binary cross-entropy's scale (0.69 at the start)
    "weights": 0.05,  # relative
}
SLOW_PARITY = [
    "data.n_bits=12",
    "data.k=3",
    "data.train_size=300",
    "data.test_size=500",
    "model.n_neurons=64",
    "optim.regularization=l2",
    "optim.lr=1e-2",
    "optim.beta1=0.9",
    "train.max_steps=1500",
    "train.log_every=20",
]
SLOW_MODELS = [(0, 0.01), (1, 0.03), (2, 0.1), (3, 1.0), (4, 0.003)]  # (seed, weight decay)


def within_tolerance(eager: torch.Tensor, compiled: torch.Tensor) -> dict:
    """Per metric, the largest difference over the logged rows and models, and whether it is within
    TOLERANCE; histories [n_logged, K, len(METRICS)]."""
    out = {}
    for i, name in enumerate(M.METRICS):
        a, b = eager[..., i], compiled[..., i]
        diff = (a - b).abs()
        if name.startswith("weights/"):
            worst, limit = float((diff / torch.maximum(a.abs(), b.abs())).max()), TOLERANCE["weights"]
        else:
            worst, limit = float(diff.max()), TOLERANCE["accuracy" if name.endswith("acc") else "loss"]
        out[name] = (worst, worst <= limit)
    return out


@pytest.mark.slow
def test_inductor_against_eager_on_a_small_parity_batch(monkeypatch):
    monkeypatch.delenv(M.COMPILE_BACKEND_ENV, raising=False)
    monkeypatch.setattr(M, "compile_failure", None)
    fits = {}
    for value in ("off", "on"):
        cfg = C.load("parity", None, [*SLOW_PARITY, f"train.compile={value}"])
        models = [
            S.Model(id=str(s), point=0, seed=s, lr=cfg.optim.lr, weight_decay=wd) for s, wd in SLOW_MODELS
        ]
        module, _ = SB.fit_batch(cfg, padded(models), CPU)
        assert module.compile_step == (value == "on") and M.compile_failure is None
        fits[value] = (cfg, models, module)
    (cfg, models, eager), (_, _, compiled) = fits["off"], fits["on"]
    steps_e, hist_e = eager.history_tensor()
    steps_c, hist_c = compiled.history_tensor()
    assert steps_e == steps_c
    n = len(models)
    assert not torch.equal(hist_e[:, :n], hist_c[:, :n])  # inductor's own kernels did run
    report = within_tolerance(hist_e[:, :n], hist_c[:, :n])
    assert all(ok for _, ok in report.values()), report
    rows_e, rows_c = S.model_rows(cfg, eager, models), S.model_rows(cfg, compiled, models)
    for key in ("outcome", "memorise_step", "generalise_step"):
        assert [r[key] for r in rows_c] == [r[key] for r in rows_e], key
    assert all(math.isfinite(r["final_test_loss"]) for r in rows_c)

    # compiled results do not depend on K either: model 2 alone (with its copy) as in the batch
    alone, _ = SB.fit_batch(fits["on"][0], padded(models[2:3]), CPU)
    assert torch.equal(alone.history_tensor()[1][:, 0], hist_c[:, 2])

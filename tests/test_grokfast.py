"""The Grokfast gradient filter (Lee et al. 2024) and the linear lr warmup of BatchedAdam: against a
plain-Python reimplementation, torch's own AdamW + LambdaLR, a state-dict round trip, the config's
checks and a short run through the framework (docs/experiments.md, "Grokfast" and "Warmup")."""

import io
import json
import math

import pytest
import torch

from grok_lightning import config as C
from grok_lightning.optim import BatchedAdam
from tests.conftest import TINY, callbacks_off, metrics_rows, short_run_args, train_quietly

BETAS, EPS = (0.9, 0.98), 1e-8
# one scalar parameter per model, K = 2, each model its own gradients, lr and decay
GRADS = [[0.5, -1.0, 2.0, 0.25, -0.75, 1.5], [-0.2, 0.4, 0.1, -0.3, 0.6, -0.05]]
P0, LRS, WDS = [0.8, -1.3], [0.1, 0.05], [0.5, 0.2]


def reference(grads, p, lr, wd, *, decay="l2", grokfast="none", alpha=0.98, lamb=2.0, window=100, warmup=0):
    """One model's parameter after each update, in plain Python floats: the filter on the loss
    gradient, then AdamW (decoupled decay p -= lr*wd*p; l1 adds wd*sign(p) to the gradient,
    coupled_l2 wd*p as torch.optim.Adam's weight_decay)."""
    m = v = 0.0
    mu, queue, out = None, [], []
    for t, g in enumerate(grads, start=1):
        lr_t = lr * min((t - 1) / warmup, 1.0) if warmup else lr
        if grokfast == "ema":
            mu = g if mu is None else alpha * mu + (1 - alpha) * g
            g = g + lamb * mu
        elif grokfast == "ma":
            queue = (queue + [g])[-window:]
            if len(queue) == window:
                g = g + lamb * sum(queue) / window
        if decay == "l2":
            p = p - lr_t * wd * p
        elif decay == "l1":
            g = g + wd * math.copysign(1.0, p) * (p != 0)
        elif decay == "coupled_l2":
            g = g + wd * p
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        v = BETAS[1] * v + (1 - BETAS[1]) * g * g
        denom = math.sqrt(v) / math.sqrt(1 - BETAS[1] ** t) + EPS
        p = p - lr_t / (1 - BETAS[0] ** t) * m / denom
        out.append(p)
    return out


def drive(grads_per_model, **options):
    """BatchedAdam on a [2, 1] float64 parameter with p.grad set by hand; values after each update."""
    w = torch.nn.Parameter(torch.tensor(P0, dtype=torch.float64).view(2, 1))
    opt = BatchedAdam([w], lr=LRS, weight_decay=WDS, betas=BETAS, eps=EPS, **options)
    out = []
    for step in range(len(grads_per_model[0])):
        w.grad = torch.tensor([g[step] for g in grads_per_model], dtype=torch.float64).view(2, 1)
        opt.step()
        out.append(w.detach().view(2).tolist())
    return out, opt, w


@pytest.mark.parametrize("decay", ["l2", "l1", "coupled_l2"])
@pytest.mark.parametrize(
    "options",
    [
        dict(grokfast="ema", grokfast_alpha=0.8, grokfast_lamb=2.0),
        dict(grokfast="ma", grokfast_window=3, grokfast_lamb=5.0),
        dict(grokfast="ema", grokfast_alpha=0.98, grokfast_lamb=2.0, warmup_steps=3),
        dict(warmup_steps=4),
    ],
    ids=["ema", "ma", "ema+warmup", "warmup"],
)
def test_filters_and_warmup_equal_a_hand_computation(decay, options):
    ours, opt, w = drive(GRADS, decay=decay, **options)
    keys = dict(
        grokfast=options.get("grokfast", "none"),
        alpha=options.get("grokfast_alpha", 0.98),
        lamb=options.get("grokfast_lamb", 2.0),
        window=options.get("grokfast_window", 100),
        warmup=options.get("warmup_steps", 0),
    )
    for k in range(2):
        expected = reference(GRADS[k], P0[k], LRS[k], WDS[k], decay=decay, **keys)
        assert [row[k] for row in ours] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    state = opt.state[w]
    if keys["grokfast"] == "ema":  # the filter's memory: the EMA of the raw gradients
        for k in range(2):
            mu = GRADS[k][0]
            for g in GRADS[k][1:]:
                mu = keys["alpha"] * mu + (1 - keys["alpha"]) * g
            assert state["grokfast_ema"][k, 0].item() == pytest.approx(mu, rel=1e-12)
    if keys["grokfast"] == "ma":
        assert state["grokfast_count"] == 6 and state["grokfast_queue"].shape == (3, 2, 1)
    assert w.grad.view(2).tolist() == [g[-1] for g in GRADS]  # p.grad itself is left unfiltered


def test_ma_changes_nothing_until_its_window_is_full_and_then_adds_lamb_times_the_mean():
    plain, _, _ = drive(GRADS, decay="none")
    ma, _, _ = drive(GRADS, decay="none", grokfast="ma", grokfast_window=4, grokfast_lamb=5.0)
    assert ma[:3] == plain[:3]  # bit for bit: the first window - 1 updates are unfiltered
    assert ma[3] != plain[3]


def test_off_is_bit_identical_to_torch_adamw():
    """grokfast=none and warmup 0 (given explicitly or by default): the update of before, which is
    torch's Adam bit for bit without decay, and with decay its decoupled subtraction p += p*(-lr*wd)
    followed by that Adam update."""
    for wd in (0.0, 0.5):
        torch.manual_seed(0)
        init = torch.randn(1, 5, 4)
        ws = [torch.nn.Parameter(init.clone()) for _ in range(3)]
        decay = "l2" if wd else "none"
        ours = [
            BatchedAdam([ws[0]], lr=[1e-2], weight_decay=[wd], decay=decay),
            BatchedAdam(
                [ws[1]],
                lr=[1e-2],
                weight_decay=[wd],
                decay=decay,
                grokfast="none",
                warmup_steps=0,
                grokfast_alpha=0.5,
                grokfast_lamb=7.0,
                grokfast_window=3,
            ),
        ]
        ref = torch.optim.AdamW([ws[2]], lr=1e-2, weight_decay=0.0, betas=BETAS, foreach=False)
        neg_lr_wd = torch.tensor(-1e-2 * wd, dtype=torch.float64).to(torch.float32)
        for _ in range(30):
            for w, opt in zip(ws, [*ours, ref]):
                opt.zero_grad()
                (w.sin() * torch.arange(4.0)).sum().backward()
                if opt is ref and wd:
                    with torch.no_grad():
                        w.addcmul_(w, neg_lr_wd)
                opt.step()
        assert torch.equal(ws[0], ws[2]) and torch.equal(ws[1], ws[2]), wd


def test_warmup_is_lambdalr_stepped_after_each_update():
    """Nanda et al.'s LambdaLR(lambda step: min(step/w, 1)) with scheduler.step() after
    optimizer.step(): update 0 has lr 0 (no change at all, decay included), update t lr * t/w."""
    w_steps = 5
    torch.manual_seed(1)
    init = torch.randn(1, 6)
    ours, ref = torch.nn.Parameter(init.clone()), torch.nn.Parameter(init.clone())
    opt = BatchedAdam([ours], lr=[1e-2], weight_decay=[0.0], decay="none", warmup_steps=w_steps)
    ref_opt = torch.optim.AdamW([ref], lr=1e-2, weight_decay=0.0, betas=BETAS, foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(ref_opt, lambda step: min(step / w_steps, 1))
    for step in range(12):
        before = ours.detach().clone()
        for w, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            (w.cos() * torch.arange(6.0)).sum().backward()
            o.step()
        sched.step()
        assert torch.equal(ours, ref), step
        if step == 0:
            assert torch.equal(ours, before)

    # with decay: update 0 leaves the parameters as they were; update t moves by lr * t / w
    p = torch.nn.Parameter(torch.tensor([[2.0]], dtype=torch.float64))
    opt = BatchedAdam([p], lr=[0.1], weight_decay=[1.0], warmup_steps=4)
    p.grad = torch.tensor([[1.0]], dtype=torch.float64)
    opt.step()
    assert p.item() == 2.0
    expected = reference([1.0] * 6, 2.0, 0.1, 1.0, warmup=4)
    for t in range(1, 6):
        opt.step()
        assert p.item() == pytest.approx(expected[t], rel=1e-12), t


@pytest.mark.parametrize(
    "options",
    [
        dict(grokfast="ema", grokfast_alpha=0.9, grokfast_lamb=2.0),
        dict(grokfast="ma", grokfast_window=2, grokfast_lamb=5.0, warmup_steps=5),
    ],
    ids=["ema", "ma+warmup"],
)
def test_state_dict_round_trip_mid_run_is_exact(options):
    torch.manual_seed(3)
    init = torch.randn(2, 3, 4)

    def run(params, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            (params.sin() * torch.linspace(-1, 2, 4)).sum().backward()
            opt.step()

    make = lambda w: BatchedAdam([w], lr=[1e-2, 3e-3], weight_decay=[1.0, 0.1], **options)  # noqa: E731
    straight = torch.nn.Parameter(init.clone())
    run(straight, make(straight), 8)

    first = torch.nn.Parameter(init.clone())
    opt = make(first)
    run(first, opt, 3)
    buffer = io.BytesIO()
    torch.save({"weights": first.detach(), "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed = torch.nn.Parameter(saved["weights"].clone())
    opt2 = make(resumed)
    opt2.load_state_dict(saved["optim"])
    run(resumed, opt2, 5)
    assert torch.equal(resumed, straight)


def test_a_frozen_model_stays_unchanged_with_the_filter():
    torch.manual_seed(4)
    w = torch.nn.Parameter(torch.randn(2, 3))
    opt = BatchedAdam([w], lr=[1e-2, 1e-2], weight_decay=[1.0, 1.0], grokfast="ema", grokfast_lamb=5.0)
    for step in range(8):
        if step == 3:
            opt.freeze(1)
            frozen, moving = w[1].detach().clone(), w[0].detach().clone()
        opt.zero_grad()
        (w**3).sum().backward()
        opt.step()
    assert torch.equal(w[1], frozen) and not torch.equal(w[0], moving)


@pytest.mark.parametrize(
    "options",
    [
        ["optim.grokfast=ema"],
        ["optim.grokfast=ma", "optim.grokfast_window=5"],
        ["optim.grokfast=ma", "optim.warmup_steps=4"],
    ],
)
def test_a_model_in_a_batch_equals_the_model_alone(options):
    """The filter and the warmup are elementwise: model 1 of a batch of 2 gets the numbers it gets
    alone, bit for bit (the window's sum in a fixed order: queue.sum(0)'s order follows the shape)."""
    from grok_lightning.module import build_module

    cfg = C.load("modadd", None, [*TINY, "optim.grokfast_window=7", *options])
    runs = []
    for seeds, lrs, wds in (([3, 5], [3e-3, 1e-2], [0.1, 1.0]), ([5], [1e-2], [1.0])):
        datamodule, module = build_module(cfg, seeds, lrs, wds)
        module.attach_data(datamodule)
        opt = module.configure_optimizers()
        inputs, targets = module.data["train"]
        for _ in range(30):
            opt.zero_grad(set_to_none=True)
            module.objective.loss(module.model(*inputs), targets).sum().backward()
            opt.step()
        runs.append([p.detach() for p in module.model.parameters()])
    assert all(torch.equal(batch[1], alone[0]) for batch, alone in zip(*runs))


@pytest.mark.parametrize(
    "override, key",
    [
        ("optim.grokfast=foo", "optim.grokfast"),
        ("optim.grokfast_alpha=1.5", "optim.grokfast_alpha"),
        ("optim.grokfast_alpha=-0.1", "optim.grokfast_alpha"),
        ("optim.grokfast_lamb=-1", "optim.grokfast_lamb"),
        ("optim.grokfast_window=0", "optim.grokfast_window"),
        ("optim.warmup_steps=-1", "optim.warmup_steps"),
    ],
)
def test_bad_settings_name_the_key(override, key):
    with pytest.raises(C.ConfigError) as err:
        C.load("modadd", None, [override])
    msg = str(err.value)
    assert msg.startswith(key) and "\n" not in msg


def test_config_reaches_the_optimiser():
    from grok_lightning.module import build_run_module

    options = ["optim.grokfast=ma", "optim.grokfast_window=7", "optim.warmup_steps=3"]
    cfg = C.load("modadd", None, [*TINY, *options])
    _, module = build_run_module(cfg)
    opt = module.configure_optimizers()
    assert (opt.grokfast, opt.grokfast_window, opt.grokfast_lamb, opt.warmup_steps) == ("ma", 7, 2.0, 3)
    _, module = build_run_module(C.load("modadd", None, TINY))
    opt = module.configure_optimizers()
    assert opt.grokfast is None and opt.warmup_steps == 0


def test_short_runs_with_the_filter_train_and_resume_exactly(tmp_path):
    """Through the framework (Lightning, checkpoints): EMA with warmup trains (its loss falls); an MA
    run stopped at 200 and resumed to 400 ends with the weights of a straight 400-step run, so the
    filter's state travels in the checkpoint."""
    from grok_lightning.train import main

    common = [*TINY, *callbacks_off(), "train.checkpoint_every=100", "optim.lr=1e-2"]
    ema = [*common, "optim.grokfast=ema", "optim.warmup_steps=10", "train.max_steps=300"]
    run = train_quietly("modadd", None, short_run_args(tmp_path / "ema", *ema))
    rows = [r for r in metrics_rows(run) if r["train/loss"]]
    losses = [float(r["train/loss"]) for r in rows]
    assert losses[-1] < 0.5 * losses[0] and all(map(math.isfinite, losses))
    assert json.loads((run / "summary.json").read_text())["steps_trained"] == 300

    ma = [*common, "optim.grokfast=ma", "optim.grokfast_window=30", "optim.grokfast_lamb=5.0"]
    straight = train_quietly("modadd", None, short_run_args(tmp_path / "b", *ma, "train.max_steps=400"))
    first = train_quietly("modadd", None, short_run_args(tmp_path / "a", *ma, "train.max_steps=200"))
    assert main([f"resume={first}", "train.max_steps=400"]) == 0

    def last(run_dir):
        return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)

    a, b = last(first), last(straight)
    assert a["global_step"] == b["global_step"] == 400
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"])
    (state,) = [s for s in a["optimizer_states"][0]["state"].values() if "grokfast_queue" in s][:1]
    assert state["grokfast_count"] == 400 and state["grokfast_queue"].shape[0] == 30


def test_coupled_l2_is_torch_adam_weight_decay():
    """optim.regularization=coupled_l2 without the filter: torch.optim.Adam(weight_decay=wd), which adds
    wd * p to the gradient (Grokfast's runs), to float32 rounding."""
    torch.manual_seed(0)
    init = torch.randn(1, 5, 4)
    ours_w, ref_w = torch.nn.Parameter(init.clone()), torch.nn.Parameter(init[0].clone())
    ours = BatchedAdam([ours_w], lr=[1e-2], weight_decay=[0.3], decay="coupled_l2")
    ref = torch.optim.Adam([ref_w], lr=1e-2, weight_decay=0.3, betas=BETAS, foreach=False)
    for _ in range(30):
        for w, opt in ((ours_w, ours), (ref_w, ref)):
            opt.zero_grad()
            (w.sin() * torch.arange(4.0)).sum().backward()
            opt.step()
    torch.testing.assert_close(ours_w[0], ref_w, rtol=1e-6, atol=1e-7)
    assert not torch.equal(ref_w, init[0])

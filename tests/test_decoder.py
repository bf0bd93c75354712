"""The two-layer decoder of Grokfast's run (grok_lightning.decoder) against the same network built from
torch's own modules as the original builds it: the initial weights bit for bit under one seed, the
logits, the split and minibatch order of data.split=grokfast, and K batched models against K alone."""

import json

import pytest
import torch
from torch import nn

from grok_lightning.decoder import BatchedDecoder
from grok_lightning.model_configs import DecoderConfig

P = 11
SMALL = DecoderConfig(d_model=16, n_layers=2, n_heads=4, d_mlp=64)


class RefBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):  # x [seq, batch, dim], as the original feeds it
        mask = torch.full((len(x), len(x)), -float("inf")).triu(1)
        x = self.ln_1(x)
        x = x + self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class RefDecoder(nn.Module):
    """Grokfast's main.py Decoder, from its description: token and position embeddings (5
    positions), blocks, a final LayerNorm and a bias-free head over p + 2 tokens."""

    def __init__(self, dim, layers, heads, tokens):
        super().__init__()
        self.token_embeddings = nn.Embedding(tokens, dim)
        self.position_embeddings = nn.Embedding(5, dim)
        self.layers = nn.ModuleList([RefBlock(dim, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, tokens, bias=False)

    def forward(self, x):  # x [seq, batch] tokens
        h = self.token_embeddings(x) + self.position_embeddings(torch.arange(x.shape[0])[:, None])
        for layer in self.layers:
            h = layer(h)
        return self.head(self.ln_f(h))


def reference(seed: int, cfg=SMALL, p=P) -> RefDecoder:
    torch.manual_seed(seed)
    return RefDecoder(cfg.d_model, cfg.n_layers, cfg.n_heads, p + 2)


def test_initial_weights_are_the_originals_bit_for_bit():
    ref = reference(3)
    ours = BatchedDecoder(SMALL, seeds=[3], p=P).weights
    w = {n: t.detach() for n, t in ref.named_parameters()}
    assert torch.equal(ours["E"][0], w["token_embeddings.weight"])
    assert torch.equal(ours["P"][0], w["position_embeddings.weight"])
    for i in range(SMALL.n_layers):
        pre = f"layers.{i}."
        assert torch.equal(ours[f"W_qkv{i}"][0], w[pre + "attn.in_proj_weight"].T)
        assert torch.equal(ours[f"b_qkv{i}"][0], w[pre + "attn.in_proj_bias"])
        assert torch.equal(ours[f"W_o{i}"][0], w[pre + "attn.out_proj.weight"].T)
        assert torch.equal(ours[f"b_o{i}"][0], w[pre + "attn.out_proj.bias"])
        assert torch.equal(ours[f"W_1{i}"][0], w[pre + "mlp.0.weight"].T)
        assert torch.equal(ours[f"b_1{i}"][0], w[pre + "mlp.0.bias"])
        assert torch.equal(ours[f"W_2{i}"][0], w[pre + "mlp.2.weight"].T)
        assert torch.equal(ours[f"b_2{i}"][0], w[pre + "mlp.2.bias"])
    assert torch.equal(ours["W_head"][0], w["head.weight"].T)
    # after construction both generators stand at the same place: the split draws alike
    torch.manual_seed(3)
    RefDecoder(SMALL.d_model, SMALL.n_layers, SMALL.n_heads, P + 2)
    from grok_lightning.decoder import original_draws

    gen = torch.Generator().manual_seed(3)
    original_draws(SMALL, P, gen)
    assert torch.equal(torch.randperm(50), torch.randperm(50, generator=gen))


def _perturbed(model: BatchedDecoder, ref: RefDecoder, seed=0):
    """Move the LayerNorms and zero biases off their initial values (in both models alike), so the
    comparison covers every parameter's role."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i in range(SMALL.n_layers):
            for name, ref_name in (
                (f"ln1_w{i}", f"layers.{i}.ln_1.weight"),
                (f"ln1_b{i}", f"layers.{i}.ln_1.bias"),
                (f"ln2_w{i}", f"layers.{i}.ln_2.weight"),
                (f"ln2_b{i}", f"layers.{i}.ln_2.bias"),
                (f"b_qkv{i}", f"layers.{i}.attn.in_proj_bias"),
                (f"b_o{i}", f"layers.{i}.attn.out_proj.bias"),
            ):
                noise = 0.3 * torch.randn(model.weights[name].shape[1:], generator=g)
                model.weights[name][0] += noise
                ref.get_parameter(ref_name).add_(noise)


def test_logits_equal_the_full_sequence_forward():
    ref = reference(1)
    ours = BatchedDecoder(SMALL, seeds=[1], p=P)
    _perturbed(ours, ref)
    a, b = torch.arange(P).repeat_interleave(P), torch.arange(P).repeat(P)
    (tokens,) = ours.encode(a[None], b[None])
    expected = ref(tokens[0].T)[-1]  # [N, p + 2] at "="
    got = ours(tokens)[0]
    assert got.shape == (P * P, P + 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_batched_models_equal_models_alone():
    seeds = [0, 5, 9]
    batched = BatchedDecoder(SMALL, seeds=seeds, p=P)
    a = torch.randint(0, P, (3, 40))
    b = torch.randint(0, P, (3, 40))
    (tokens,) = batched.encode(a, b)
    together = batched(tokens)
    for k, s in enumerate(seeds):
        alone = BatchedDecoder(SMALL, seeds=[s], p=P)
        torch.testing.assert_close(together[k], alone(tokens[k : k + 1])[0], rtol=1e-6, atol=1e-6)


def test_gradients_equal_the_reference():
    ref = reference(2)
    ours = BatchedDecoder(SMALL, seeds=[2], p=P)
    a, b = torch.randint(0, P, (1, 30)), torch.randint(1, P, (1, 30))
    target = (a * b) % P
    (tokens,) = ours.encode(a, b)
    nn.functional.cross_entropy(ref(tokens[0].T)[-1], target[0]).backward()
    nn.functional.cross_entropy(ours(tokens)[0], target[0]).backward()
    grads = {n: t.grad for n, t in ref.named_parameters()}
    torch.testing.assert_close(
        ours.weights["W_qkv0"].grad[0], grads["layers.0.attn.in_proj_weight"].T, rtol=1e-4, atol=1e-6
    )
    torch.testing.assert_close(
        ours.weights["E"].grad[0], grads["token_embeddings.weight"], rtol=1e-4, atol=1e-6
    )
    torch.testing.assert_close(ours.weights["W_head"].grad[0], grads["head.weight"].T, rtol=1e-4, atol=1e-6)


def test_refuses_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        BatchedDecoder(DecoderConfig(d_model=10, n_heads=4), seeds=[0], p=P)


def test_parameter_count_is_the_originals():
    ref = reference(0, DecoderConfig(), 97)
    ours = BatchedDecoder(DecoderConfig(), seeds=[0], p=97)
    assert ours.n_trainable_per_model() == sum(t.numel() for t in ref.parameters())
    assert ours.n_trainable_per_model() == 422_784


# ------------------------------------------------------------------ Grokfast's data, order and loop
TINY_DECODER = [  # preset=decoder, small: p = 11 (110 pairs, 55 to train), d_model 16, batches of 16
    f"data.p={P}",
    "model.decoder.d_model=16",
    "model.decoder.d_mlp=64",
    "train.batch_size=16",
    "train.stop_when_generalised=false",
    "optim.weight_decay=0.01",
    "optim.lr=1e-2",
    "optim.grokfast=ema",
    "optim.grokfast_alpha=0.9",
    "optim.grokfast_lamb=2.0",
]


def original_table(p=P):
    """Grokfast's multiplication table: rows a, op, b, =, a*b mod p for a in 0..p-1, b in 1..p-1."""
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(1, p)).T
    return torch.stack([a, torch.full_like(a, p + 1), b, torch.full_like(a, p), a * b % p])


def test_split_and_epoch_order_are_the_originals():
    """data.split=grokfast: the split is randperm(n) after the model's initial draws, and epoch e's
    minibatches cut the e-th randperm of the training set, the last one smaller."""
    from grok_lightning import config as C
    from grok_lightning.tasks import TASKS

    cfg = C.load("modadd", "decoder", [*TINY_DECODER, "train.seed=4"])
    dm = TASKS["modadd"].build_datamodule(cfg, [4])
    dm.batch_size = 16
    torch.manual_seed(4)
    reference(4)
    table = original_table()
    n = table.shape[1]
    train_idx, _ = torch.randperm(n).split(n // 2)
    train = table[:, train_idx]
    assert torch.equal(dm.train_inputs[0][0], train[0]) and torch.equal(dm.train_inputs[1][0], train[2])
    assert torch.equal(dm.train_targets[0], train[4])
    assert dm.test_targets.shape[1] == n - n // 2
    step = 0
    for _ in range(3):  # epochs: 55 pairs -> batches of 16, 16, 16, 7
        order = torch.randperm(train.shape[1])
        for chunk in order.split(16):
            assert torch.equal(dm.batch_indices(step)[0], chunk), step
            step += 1
    assert torch.equal(dm.batch_indices(1)[0], dm.batch_indices(1)[0])  # a step back replays the stream


def test_training_equals_the_original_loop(tmp_path):
    """20 updates through the framework (Lightning, GrokModule, BatchedAdam) against the original's
    loop on torch's modules: shuffled minibatches, cross-entropy over p + 2 logits, the EMA filter,
    then torch.optim.Adam with coupled weight decay and LambdaLR's 10-update warmup."""
    from tests.conftest import callbacks_off, short_run_args, train_quietly

    run = train_quietly(
        "modadd", "decoder", short_run_args(tmp_path, *TINY_DECODER, *callbacks_off(), "train.max_steps=20")
    )
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    ours = {k.split(".")[-1]: v[0] for k, v in ckpt["state_dict"].items()}

    torch.manual_seed(0)
    ref = reference(0)
    table = original_table()
    n = table.shape[1]
    train = table[:, torch.randperm(n).split(n // 2)[0]]
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2, betas=(0.9, 0.98), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda u: min(u / 10, 1))
    ema, updates = {}, 0
    while updates < 20:
        for batch in train[:, torch.randperm(train.shape[1])].split(16, dim=1):
            if updates == 20:
                break
            loss = nn.functional.cross_entropy(ref(batch[:-1])[-1], batch[-1])
            opt.zero_grad()
            loss.backward()
            for name, w in ref.named_parameters():
                g = w.grad.detach()
                ema[name] = g.clone() if name not in ema else ema[name] * 0.9 + g * 0.1
                w.grad = g + 2.0 * ema[name]
            opt.step()
            sched.step()
            updates += 1
    w = {k: v.detach() for k, v in ref.named_parameters()}
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-3, atol=2e-5)  # noqa: E731
    close(ours["E"], w["token_embeddings.weight"])
    close(ours["W_head"], w["head.weight"].T)
    for i in range(SMALL.n_layers):
        close(ours[f"W_qkv{i}"], w[f"layers.{i}.attn.in_proj_weight"].T)
        close(ours[f"b_o{i}"], w[f"layers.{i}.attn.out_proj.bias"])
        close(ours[f"ln2_w{i}"], w[f"layers.{i}.ln_2.weight"])
        close(ours[f"W_2{i}"], w[f"layers.{i}.mlp.2.weight"].T)
    assert not torch.equal(ours["E"], reference(0).token_embeddings.weight.detach())  # it moved


def test_minibatch_run_resumes_exactly_mid_epoch(tmp_path):
    """A run stopped after 30 updates (mid-epoch: 4 batches an epoch) and resumed to 60 ends with the
    weights, optimiser state and history of a straight 60-update run."""
    from grok_lightning.train import main
    from tests.conftest import callbacks_off, short_run_args, train_quietly

    common = [*TINY_DECODER, *callbacks_off(), "train.checkpoint_every=10", "train.log_every=10"]
    straight = train_quietly(
        "modadd", "decoder", short_run_args(tmp_path / "b", *common, "train.max_steps=60")
    )
    first = train_quietly("modadd", "decoder", short_run_args(tmp_path / "a", *common, "train.max_steps=30"))
    assert main([f"resume={first}", "train.max_steps=60"]) == 0
    load = lambda r: torch.load(r / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)  # noqa: E731
    a, b = load(first), load(straight)
    assert a["global_step"] == b["global_step"] == 60
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"])
    assert torch.equal(a["grok_history"]["values"], b["grok_history"]["values"])
    summary = json.loads((first / "summary.json").read_text())
    assert summary["steps_trained"] == 60


def test_a_short_run_memorises(tmp_path):
    """The decoder fits its training pairs within a few hundred minibatch updates (test accuracy stays
    low: 55 pairs of a table of 110 do not teach multiplication mod 11 that fast)."""
    from tests.conftest import callbacks_off, metrics_rows, short_run_args, train_quietly

    args = [*TINY_DECODER, *callbacks_off(), "optim.grokfast=none", "train.max_steps=600"]
    run = train_quietly("modadd", "decoder", short_run_args(tmp_path, *args))
    rows = [r for r in metrics_rows(run) if r.get("train/acc")]
    train_acc = [float(r["train/acc"]) for r in rows]
    assert train_acc[0] < 0.5 and max(train_acc) == 1.0 and train_acc[-1] >= 0.95
    assert float(rows[-1]["test/acc"]) < 0.5


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["data.split=grokfast"], "data.split=grokfast draws the split after model.kind=decoder"),
        (["model.kind=decoder"], "train.precision=original is not available for model.kind=decoder"),
        (
            ["model.decoder.d_model=10"],
            "model.decoder.d_model=10 must be a multiple of model.decoder.n_heads=4",
        ),
        (["train.batch_size=-1"], "train.batch_size"),
        (["optim.regularization=l3"], "optim.regularization"),
    ],
)
def test_bad_decoder_configs_are_one_line_errors_naming_the_key(overrides, named):
    from grok_lightning import config as C

    preset = "decoder" if overrides[0].startswith(("model.decoder", "train.batch")) else None
    with pytest.raises(C.ConfigError) as err:
        C.load("modadd", preset, overrides)
    assert named in str(err.value) and "\n" not in str(err.value)

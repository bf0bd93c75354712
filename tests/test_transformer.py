"""The one-layer transformer of Nanda et al. 2023 (grok_lightning.transformer) and its analyses
(grok_lightning.fourier.embedding): batching, the original code's init and forward, shapes,
init scales, the Fourier analyses on hand-made inputs, and a short training run that memorises."""

import math

import pytest
import torch

from grok_lightning.fourier import basis
from grok_lightning.fourier import embedding as emb
from grok_lightning.fourier import logits as fourier_logits
from grok_lightning.model import FactoredMLP, FactoredMLPConfig
from grok_lightning.transformer import BatchedTransformer, TransformerConfig

SMALL = TransformerConfig(d_model=16, n_heads=2, d_head=8, d_mlp=24)


def random_pairs(K, N, p, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, p, (K, N), generator=g), torch.randint(0, p, (K, N), generator=g)


# ------------------------------------------------------------------ the original code, transcribed
def original_params(cfg: TransformerConfig, p: int, seed: int) -> dict[str, torch.Tensor]:
    """The original Transformer's parameters after torch.manual_seed(seed), in its shapes and
    creation order (progress-measures-paper/transformers.py: Embed, PosEmbed, Attention K Q V O,
    MLP, Unembed), float64."""
    d, H, dh, m, V = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, p + 1
    sd = math.sqrt(d)
    with torch.random.fork_rng():  # the global generator, as the original; restored afterwards
        torch.manual_seed(seed)
        params = {"W_E": torch.randn(d, V) / sd, "W_pos": torch.randn(3, d) / sd}
        for name in ("W_K", "W_Q", "W_V"):
            params[name] = torch.randn(H, dh, d) / sd
        params["W_O"] = torch.randn(d, dh * H) / sd
        params["W_in"], params["b_in"] = torch.randn(m, d) / sd, torch.zeros(m)
        params["W_out"], params["b_out"] = torch.randn(d, m) / sd, torch.zeros(d)
        params["W_U"] = torch.randn(d, V) / math.sqrt(V)
    return {k: v.double() for k, v in params.items()}


def original_forward(P: dict[str, torch.Tensor], x: torch.Tensor, d_head: int):
    """The original forward's einsums on tokens [N, 3]: (logits [N, 3, p+1], MLP post [N, 3, d_mlp])."""
    x = torch.einsum("dbp -> bpd", P["W_E"][:, x]) + P["W_pos"]
    k = torch.einsum("ihd,bpd->biph", P["W_K"], x)
    q = torch.einsum("ihd,bpd->biph", P["W_Q"], x)
    v = torch.einsum("ihd,bpd->biph", P["W_V"], x)
    scores = torch.einsum("biph,biqh->biqp", k, q)
    mask = torch.tril(torch.ones(3, 3, dtype=x.dtype))
    attn = torch.softmax((torch.tril(scores) - 1e10 * (1 - mask)) / math.sqrt(d_head), dim=-1)
    z = torch.einsum("biph,biqp->biqh", v, attn)
    z_flat = z.permute(0, 2, 1, 3).reshape(z.shape[0], z.shape[2], -1)  # 'b i q h -> b q (i h)'
    x = x + torch.einsum("df,bqf->bqd", P["W_O"], z_flat)
    post = torch.relu(torch.einsum("md,bpd->bpm", P["W_in"], x) + P["b_in"])
    x = x + torch.einsum("dm,bpm->bpd", P["W_out"], post) + P["b_out"]
    return x @ P["W_U"], post


# ------------------------------------------------------------------------------------ the model
def test_batched_models_equal_separate_models():
    p, seeds = 13, [0, 5, 9]
    batched = BatchedTransformer(SMALL, seeds=seeds, p=p, precision="64")
    singles = [BatchedTransformer(SMALL, seeds=[s], p=p, precision="64") for s in seeds]
    for name, w in batched.weights.items():
        assert w.shape[0] == 3  # GrokModule's per-model norms flatten every parameter from dim 1
        for k, single in enumerate(singles):
            assert torch.equal(w[k], single.weights[name][0]), name
    a, b = random_pairs(3, 40, p)
    logits = batched(*batched.encode(a, b))
    for k, single in enumerate(singles):
        alone = single(*single.encode(a[k : k + 1], b[k : k + 1]))
        torch.testing.assert_close(logits[k : k + 1], alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cfg", [SMALL, TransformerConfig()], ids=["small", "paper"])
def test_init_and_forward_match_the_original_code(cfg):
    """Seeded like the original (torch.manual_seed), the weights are the original's, transposed to
    x @ W and without W_U's "=" column; the logits are the original forward's at the last position
    (all p + 1 of its outputs but the "=" one), and so are the neuron activations."""
    p, seed = 13, 3
    model = BatchedTransformer(cfg, seeds=[seed], p=p, precision="64")
    P = original_params(cfg, p, seed)
    w = {name: t[0] for name, t in model.weights.items()}
    H, dh, d = cfg.n_heads, cfg.d_head, cfg.d_model
    assert torch.equal(w["W_E"], P["W_E"].T) and torch.equal(w["W_pos"], P["W_pos"])
    for name in ("W_Q", "W_K", "W_V"):
        assert torch.equal(w[name], P[name].transpose(1, 2))
    assert torch.equal(w["W_O"].reshape(H * dh, d), P["W_O"].T)
    assert torch.equal(w["W_in"], P["W_in"].T) and torch.equal(w["W_out"], P["W_out"].T)
    assert torch.equal(w["W_U"], P["W_U"][:, :p])
    assert not w["b_in"].any() and not w["b_out"].any()

    # trained-looking biases, so that they are exercised too
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name in ("b_in", "b_out"):
            model.weights[name].normal_(generator=g)
            P[name] = model.weights[name][0].clone()
    a, b = random_pairs(1, 60, p)
    (tokens,) = model.encode(a, b)
    want_logits, want_post = original_forward(P, tokens[0], dh)
    torch.testing.assert_close(model(tokens)[0], want_logits[:, -1, :p], rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(model.neuron_activations(tokens)[0], want_post[:, -1], rtol=1e-11, atol=1e-11)


def test_shapes_and_causal_attention():
    p, K, N = 11, 2, 17
    model = BatchedTransformer(SMALL, seeds=[1, 2], p=p)
    a, b = random_pairs(K, N, p)
    (tokens,) = model.encode(a, b)
    assert tokens.shape == (K, N, 3) and tokens.dtype == torch.long
    assert torch.equal(tokens[..., 0], a) and torch.equal(tokens[..., 1], b)
    assert bool((tokens[..., 2] == p).all())
    assert model(tokens).shape == (K, N, p)
    pattern = model.attention_patterns(tokens)
    assert pattern.shape == (K, SMALL.n_heads, N, 3, 3)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(K, SMALL.n_heads, N, 3))
    assert bool((pattern[..., 0, 1:] == 0).all()) and bool((pattern[..., 1, 2] == 0).all())
    assert bool((pattern[..., 0, 0] == 1).all())  # position 0 can only attend to itself
    assert model.embedding().shape == (K, p, SMALL.d_model)
    assert torch.equal(model.embedding(), model.weights["W_E"][:, :p])
    acts = model.neuron_activations(tokens)
    assert acts.shape == (K, N, SMALL.d_mlp) and bool((acts >= 0).all())
    W_L = model.unembed_of_neurons()
    assert W_L.shape == (K, SMALL.d_mlp, p)
    torch.testing.assert_close(W_L, model.weights["W_out"] @ model.weights["W_U"])
    (pairs,) = model.all_pairs()
    assert pairs.shape == (K, p * p, 3) and pairs[0, 3 * p + 5].tolist() == [3, 5, p]


def test_attention_of_the_forward_is_the_last_row_of_the_patterns():
    """forward's table-gathered attention equals the plain full-sequence patterns' "=" row: the
    logits computed from that row by hand match."""
    p = 11
    model = BatchedTransformer(SMALL, seeds=[4], p=p, precision="64")
    (tokens,) = model.encode(*random_pairs(1, 30, p))
    w = {n: t[0] for n, t in model.weights.items()}
    row = model.attention_patterns(tokens)[0, :, :, 2]  # [H, N, 3 (key)]
    x = model.embed(tokens)[0]  # [N, 3, d]
    v = torch.einsum("ntd,hde->hnte", x, w["W_V"])
    z = torch.einsum("hnt,hnte->nhe", row, v).flatten(1)
    resid = x[:, 2] + z @ w["W_O"].flatten(0, 1)
    logits = (resid + torch.relu(resid @ w["W_in"] + w["b_in"]) @ w["W_out"] + w["b_out"]) @ w["W_U"]
    torch.testing.assert_close(model(tokens)[0], logits, rtol=1e-12, atol=1e-12)


def test_parameter_count_and_precisions():
    model = BatchedTransformer(TransformerConfig(), seeds=[0], p=113)
    d, m, V = 128, 512, 114
    expected = V * d + 3 * d + 3 * 4 * d * 32 + 4 * 32 * d + d * m + m + m * d + d + d * 113
    assert model.n_trainable_per_model() == expected == 226_688
    assert model.weights["W_E"].dtype == torch.float32
    assert BatchedTransformer(SMALL, seeds=[0], p=5, precision="64").weights["W_U"].dtype == torch.float64
    for precision in ("original", "tf32", "bf16", "64_mm32"):
        with pytest.raises(ValueError, match=precision):
            BatchedTransformer(SMALL, seeds=[0], p=5, precision=precision)


def test_init_scales():
    """randn / sqrt(d_model) for every matrix but W_U (randn / sqrt(p + 1)); zero biases."""
    p = 113
    model = BatchedTransformer(TransformerConfig(), seeds=[0, 1, 2], p=p)
    w = model.weights
    for name in ("W_E", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"):
        assert w[name].std().item() == pytest.approx(1 / math.sqrt(128), rel=0.03), name
        assert abs(w[name].mean().item()) < 0.01, name
    assert w["W_pos"].std().item() == pytest.approx(1 / math.sqrt(128), rel=0.1)
    assert w["W_U"].std().item() == pytest.approx(1 / math.sqrt(p + 1), rel=0.03)
    assert not w["b_in"].any() and not w["b_out"].any()
    assert not torch.equal(w["W_E"][0], w["W_E"][1])  # the seeds differ


def test_load_model_params():
    p = 7
    source = BatchedTransformer(SMALL, seeds=[0, 1], p=p)
    target = BatchedTransformer(SMALL, seeds=[5], p=p)
    arrays = {name: w[1].detach().numpy() for name, w in source.weights.items()}
    target.load_model_params(0, arrays)
    for name, w in target.weights.items():
        assert torch.equal(w[0], source.weights[name][1])
    with pytest.raises(ValueError, match="names"):
        target.load_model_params(0, {k: v for k, v in arrays.items() if k != "b_in"})
    with pytest.raises(ValueError, match="W_U"):
        target.load_model_params(0, {**arrays, "W_U": arrays["W_U"][:, :-1]})


# ------------------------------------------------------------------------------------ analyses
def circle_embedding(p, freqs, d=8, seed=0):
    """[p, d] float64: each frequency's cos and sin along two random directions."""
    g = torch.Generator().manual_seed(seed)
    n = torch.arange(p, dtype=torch.float64)
    W = torch.zeros(p, d, dtype=torch.float64)
    for f in freqs:
        u, v = torch.randn(2, d, generator=g, dtype=torch.float64)
        W += torch.cos(2 * math.pi * f * n / p)[:, None] * u + torch.sin(2 * math.pi * f * n / p)[:, None] * v
    return W


def test_embedding_spectrum_of_a_single_frequency():
    p, f = 31, 4
    W = torch.stack([circle_embedding(p, [f], seed=s) for s in range(2)])  # [K=2, p, d]
    norms = emb.embedding_frequency_norms(W)
    assert norms.shape == (2, 15)
    assert bool((norms[:, f - 1] > 1).all())
    others = torch.cat([norms[:, : f - 1], norms[:, f:]], 1)
    assert others.abs().max().item() < 1e-10
    bars = emb.embedding_fourier_norms(W)
    assert bars.shape == (2, p)
    torch.testing.assert_close(bars.square().sum(-1), W.square().sum((-1, -2)))  # orthonormal basis
    torch.testing.assert_close(bars[:, 2 * f - 1 : 2 * f + 1].square().sum(-1), norms[:, f - 1].square())
    gini = emb.embedding_gini(W)
    torch.testing.assert_close(gini, torch.full((2,), 14 / 15, dtype=torch.float64))  # (n_freq - 1) / n_freq
    mask = emb.embedding_key_frequency_mask(W)
    assert mask.sum().item() == 2 and bool(mask[:, f - 1].all())


def test_embedding_gini_of_a_flat_spectrum_and_of_a_few_frequencies():
    p = 31
    flat = circle_embedding(p, range(1, 16), d=64)  # every frequency, random (similar) amplitudes
    Fb = basis.fourier_basis(p)
    coef = torch.zeros(p, 30, dtype=torch.float64)
    coef[1:, :] = torch.eye(30)  # exactly equal norm in every non-constant row
    exact_flat = Fb.T @ coef
    assert emb.embedding_gini(exact_flat).item() == pytest.approx(0.0, abs=1e-12)
    assert emb.embedding_gini(flat).item() < 0.25
    assert not emb.embedding_key_frequency_mask(exact_flat).any()
    five = circle_embedding(p, [2, 5, 7, 11, 13], d=64)
    assert emb.embedding_gini(five).item() > 0.6
    assert emb.embedding_key_frequency_mask(five).nonzero().flatten().add(1).tolist() == [2, 5, 7, 11, 13]


def test_neuron_logit_frequency_norms():
    p = 13
    W_L = circle_embedding(p, [3], d=6).T.unsqueeze(0)  # [1, 6 neurons, p]
    norms = emb.neuron_logit_frequency_norms(W_L)
    assert norms.shape == (1, 6) and norms.argmax().item() == 2 and norms[0, 3:].max().item() < 1e-10


def wave_table(p, freqs, scale=6.0, phases=None):
    """Logits [1, p, p, p] = sum_k scale * cos(w_k (a + b - c) + phase_k): built from waves only."""
    n = torch.arange(p, dtype=torch.float64)
    d = n[:, None, None] + n[None, :, None] - n[None, None, :]
    table = torch.zeros(p, p, p, dtype=torch.float64)
    for i, f in enumerate(freqs):
        table += scale * torch.cos(2 * math.pi * f * d / p + (phases[i] if phases else 0.0))
    return table.unsqueeze(0)


@pytest.mark.parametrize("measure", [emb.key_frequency_progress, emb.paper_progress_measures])
def test_restricted_and_excluded_loss_on_wave_tables(measure):
    p, keys = 17, [2, 5, 7]
    n_freq = basis.n_frequencies(p)
    key_mask = torch.zeros(1, n_freq, dtype=torch.bool)
    key_mask[0, [k - 1 for k in keys]] = True
    a, b = random_pairs(1, 100, p, seed=3)
    ce = emb.mean_cross_entropy

    table = wave_table(p, keys, phases=[0.0, 0.3, -1.1])
    s = torch.arange(p)
    full_all = ce(table.reshape(1, p * p, p), ((s[:, None] + s[None, :]) % p).reshape(1, -1))
    out = measure(table, key_mask, a, b)
    assert out["restricted_loss"].shape == out["excluded_loss"].shape == (1,)
    # only key waves: restricting changes nothing, excluding leaves nothing (uniform: log p)
    torch.testing.assert_close(out["restricted_loss"], full_all, rtol=1e-9, atol=1e-12)
    assert full_all.item() < math.log(p) - 1.5
    assert out["excluded_loss"].item() == pytest.approx(math.log(p), abs=1e-9)

    # a non-key wave only: restricting leaves nothing, excluding changes nothing
    other = wave_table(p, [3])
    out = measure(other, key_mask, a, b)
    assert out["restricted_loss"].item() == pytest.approx(math.log(p), abs=1e-9)
    train_logits = other[0, a[0], b[0]].unsqueeze(0)
    torch.testing.assert_close(out["excluded_loss"], ce(train_logits, (a + b) % p), rtol=1e-9, atol=1e-12)


def test_wave_progress_is_the_mlp_progress_measures_from_a_table():
    """key_frequency_progress on a logit table = logits.progress_measures on the MLP's weights."""
    p, K = 11, 2
    mlp = FactoredMLP(FactoredMLPConfig(d_embed=6, n_neurons=5), seeds=[0, 1], p=p, precision="64")
    W_in_a, W_in_b, W_out = mlp.collapsed()
    table = fourier_logits.logit_grid(W_in_a, W_in_b, W_out, torch.relu)
    key_mask = torch.zeros(K, basis.n_frequencies(p), dtype=torch.bool)
    key_mask[0, [0, 3]] = True
    key_mask[1, [2]] = True
    a, b = random_pairs(K, 30, p)
    targets = (a + b) % p
    loss_fn = emb.mean_cross_entropy
    want = fourier_logits.progress_measures(
        W_in_a, W_in_b, W_out, torch.relu, key_mask, mlp(*mlp.encode(a, b)), targets, loss_fn
    )
    got = emb.key_frequency_progress(table, key_mask, a, b, loss_fn)
    for name in ("restricted_loss", "excluded_loss"):
        torch.testing.assert_close(got[name], want[name], rtol=1e-10, atol=1e-12)


def test_paper_projection_is_the_original_helpers():
    """sum_frequency_logits = the original's get_component_cos_xpy + get_component_sin_xpy on a
    random [p*p, p] logit table (helpers.py, 2D Fourier basis terms)."""
    p, keys = 7, [1, 3]
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(p * p, p, generator=g, dtype=torch.float64)
    Fb = basis.fourier_basis(p)

    def term(x, y):
        return (Fb[x][:, None] * Fb[y][None, :]).flatten()

    want = torch.zeros_like(logits)
    for f in keys:
        cos_dir = (term(2 * f - 1, 2 * f - 1) - term(2 * f, 2 * f)) / math.sqrt(2)
        sin_dir = (term(2 * f, 2 * f - 1) + term(2 * f - 1, 2 * f)) / math.sqrt(2)
        for direction in (cos_dir, sin_dir):
            want += direction[:, None] @ (direction[None, :] @ logits)
    mask = torch.zeros(basis.n_frequencies(p), dtype=torch.bool)
    mask[[f - 1 for f in keys]] = True
    key_part = emb.sum_frequency_logits(logits.view(p, p, p), mask)  # [p (s), p (c)]
    s = (torch.arange(p)[:, None] + torch.arange(p)[None, :]) % p
    torch.testing.assert_close(key_part[s].reshape(p * p, p), want, rtol=1e-10, atol=1e-12)


def test_neuron_frequency_clusters():
    p = 13
    n = torch.arange(p, dtype=torch.float64)
    A, B = n[:, None], n[None, :]

    def w(f):
        return 2 * math.pi * f / p

    neurons = [
        torch.cos(w(3) * (A + B) + 0.4),  # a product term of frequency 3
        torch.cos(w(5) * A) + 0.5 * torch.sin(w(5) * B) + torch.cos(w(5) * A) * torch.sin(w(5) * B),
        torch.relu(torch.cos(w(2) * (A + B))) + 7.0,  # ReLU: mostly frequency 2, plus harmonics
        torch.randn(p, p, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
    ]
    acts = torch.stack(neurons, -1).unsqueeze(0)  # [1, p, p, 4]
    freqs, frac = emb.neuron_frequency_clusters(acts)
    assert freqs.shape == frac.shape == (1, 4)
    assert freqs[0, :3].tolist() == [3, 5, 2]
    assert frac[0, :2].tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    # the ReLU's harmonics: 1/8 of the variance 1/4 - 1/pi^2 is the fundamental's, 0.84 < 0.85
    assert frac[0, 2].item() == pytest.approx(0.125 / (0.25 - 1 / math.pi**2), abs=0.01)
    assert frac[0, 3].item() < 0.5
    n_freq = basis.n_frequencies(p)
    clusters = emb.neuron_key_frequency_mask(freqs, frac, n_freq, emb.NEURON_CLUSTER_THRESHOLD)
    assert (clusters[0].nonzero().flatten() + 1).tolist() == [3, 5]
    every = emb.neuron_key_frequency_mask(freqs, frac, n_freq)  # the original's: every neuron counts
    assert (every[0].nonzero().flatten() + 1).tolist() == sorted(set(freqs[0].tolist()))
    with pytest.raises(ValueError, match="p, p, n"):
        emb.neuron_frequency_clusters(acts.reshape(1, p * p, 4))


def test_analyses_run_on_the_model():
    """The model's outputs feed the analyses with the right shapes."""
    p, K = 11, 2
    model = BatchedTransformer(SMALL, seeds=[0, 1], p=p)
    with torch.no_grad():
        (pairs,) = model.all_pairs()
        table = model(pairs).view(K, p, p, p)
        acts = model.neuron_activations(pairs).view(K, p, p, SMALL.d_mlp)
        freqs, frac = emb.neuron_frequency_clusters(acts)
        assert freqs.shape == (K, SMALL.d_mlp) and bool(((freqs >= 1) & (freqs <= 5)).all())
        key_mask = emb.embedding_key_frequency_mask(model.embedding())
        assert key_mask.shape == (K, 5)
        a, b = random_pairs(K, 20, p)
        for measure in (emb.key_frequency_progress, emb.paper_progress_measures):
            out = measure(table, key_mask | True, a, b)  # every frequency key: restricted ~ full
            assert out["restricted_loss"].shape == (K,)
        assert emb.neuron_logit_frequency_norms(model.unembed_of_neurons()).shape == (K, 5)
        assert emb.embedding_gini(model.embedding()).shape == (K,)


# ------------------------------------------------------------------------------------ training
def test_a_tiny_transformer_memorises():
    """p = 11, half of the ordered pairs, two models at once, full-batch AdamW: train accuracy 1."""
    p = 11
    cfg = TransformerConfig(d_model=32, n_heads=2, d_head=16, d_mlp=64)
    model = BatchedTransformer(cfg, seeds=[0, 1], p=p)
    perms = [torch.randperm(p * p, generator=torch.Generator().manual_seed(s))[: p * p // 2] for s in (0, 1)]
    idx = torch.stack(perms)
    a, b = idx // p, idx % p
    (tokens,) = model.encode(a, b)
    targets = (a + b) % p
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1.0, betas=(0.9, 0.98))
    for _ in range(200):  # both memorise by step ~80
        loss = emb.mean_cross_entropy(model(tokens), targets)
        opt.zero_grad()
        loss.sum().backward()  # the models are independent: the sum's gradient splits
        opt.step()
    with torch.no_grad():
        acc = (model(tokens).argmax(-1) == targets).double().mean(-1)
    assert acc.tolist() == [1.0, 1.0]


# ------------------------------------------------------------------------------ in the framework
# A small transformer through the whole run: the same GrokModule, Trainer, checkpoints and resume
TINY_TRANSFORMER = [
    "preset=transformer",
    "data.p=11",
    "data.symmetric=false",
    "data.train_fraction=0.5",
    "model.transformer.d_model=16",
    "model.transformer.n_heads=2",
    "model.transformer.d_head=8",
    "model.transformer.d_mlp=32",
    "model.loss_scale=mean",
    "optim.lr=3e-3",
    "optim.warmup_steps=10",
    "train.log_every=20",
    "train.checkpoint_every=100",
]


def test_a_short_transformer_run_memorises_and_its_analyses_are_the_transformers(run_root):
    import json

    from grok_lightning.train import main
    from tests.conftest import only_run, short_run_args

    assert main(["task=modadd", *short_run_args(run_root, *TINY_TRANSFORMER, "train.max_steps=300")]) == 0
    run_dir = only_run(run_root)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final"]["train/acc"] == 1.0 and summary["memorise_step"] is not None
    figs = sorted(p.name for p in (run_dir / "figures").glob("*.png"))
    # the transformer's own figures; none of the MLP's (stars, DFT heatmaps need W_input)
    assert {"attention.png", "embedding_spectrum.png", "neuron_clusters.png", "progress.png"} <= set(figs)
    assert not {"stars.png", "logit_waves.png", "sparsity.png"} & set(figs)
    assert set(summary["circuit"]) == {"restricted_loss", "excluded_loss", "embed_gini", "n_key_freqs"}
    assert summary["callback_seconds"].keys() >= {"transformer_circuit"}


def test_a_resumed_transformer_run_equals_an_uninterrupted_one(run_root, tmp_path):
    from grok_lightning.module import module_from_checkpoint
    from grok_lightning.train import main
    from tests.conftest import metrics_rows, only_run, short_run_args

    args = short_run_args(run_root, *TINY_TRANSFORMER, "callbacks.transformer_circuit.enabled=false")
    assert main(["task=modadd", *args, "train.max_steps=200"]) == 0
    run_dir = only_run(run_root)
    assert main([f"resume={run_dir}", "train.max_steps=400"]) == 0
    straight_root = tmp_path / "straight"
    straight_args = short_run_args(
        straight_root, *TINY_TRANSFORMER, "callbacks.transformer_circuit.enabled=false"
    )
    assert main(["task=modadd", *straight_args, "train.max_steps=400"]) == 0
    straight = only_run(straight_root)
    a = module_from_checkpoint(run_dir / "checkpoints" / "last.ckpt").model
    b = module_from_checkpoint(straight / "checkpoints" / "last.ckpt").model
    for name, w in a.weights.items():
        assert torch.equal(w, b.weights[name]), name
    assert [r["step"] for r in metrics_rows(run_dir)] == [r["step"] for r in metrics_rows(straight)]


def test_transformer_config_refuses_what_it_cannot_train():
    from grok_lightning import config as C
    from grok_lightning.schema import ConfigError

    with pytest.raises(ConfigError, match="train.precision=original"):
        C.load("modadd", None, ["model.kind=transformer", "train.precision=original"])
    with pytest.raises(ConfigError, match="model.init=original"):
        C.load("modadd", "transformer", ["model.init=original"])
    with pytest.raises(ConfigError, match="model.kind"):
        C.load("fixed_embed", None, ["model.kind=transformer"])

import itertools

import pytest
import torch
from omegaconf import OmegaConf

from grok_lightning import config as C
from grok_lightning.model import FactoredMLP, FactoredMLPConfig, circular_embedding
from grok_lightning.optim import BatchedAdam
from grok_lightning.tasks.modadd import build_model

FLAGS = list(
    itertools.product(["tied", "input_tied", "untied", "fixed"], [True, False], [True, False], [True, False])
)


@pytest.mark.parametrize("embed, tied_hidden, collapsed_hidden, collapsed_out", FLAGS)
def test_every_flag_combination_shapes(embed, tied_hidden, collapsed_hidden, collapsed_out):
    p, d, n, K = 7, 6 if embed != "fixed" else 2, 5, 3
    settings = FactoredMLPConfig(
        d_embed=d,
        n_neurons=n,
        embed=embed,
        tied_hidden=tied_hidden,
        collapsed_hidden=collapsed_hidden,
        collapsed_out=collapsed_out,
    )
    model = FactoredMLP(settings, seeds=[0, 1, 2], p=p)
    a = torch.randint(0, p, (K, 10))
    b = torch.randint(0, p, (K, 10))
    width = d if collapsed_hidden else n
    W_in_a, W_in_b, W_out = model.collapsed()
    assert W_in_a.shape == W_in_b.shape == (K, p, width) and W_out.shape == (K, width, p)
    logits = model(*model.encode(a, b))
    assert logits.shape == (K, 10, p)
    # The collapsed view gives the same logits as the factored forward.
    h = W_in_a[torch.arange(K)[:, None], a] + W_in_b[torch.arange(K)[:, None], b]
    torch.testing.assert_close(logits, torch.bmm(torch.relu(h), W_out))


def test_main_preset_parameter_counts():
    model = build_model(C.load("modadd"), [165])
    assert model.n_trainable_per_model() == 57_500
    assert model.n_collapsed_per_model() == 3_216


def test_build_model_takes_the_model_section_whole():
    """The validated section arrives as its dataclass with every override; the run keeps the OmegaConf."""
    cfg = C.load("modadd", None, ["model.init=torch", "model.d_embed=8", "model.activation=square"])
    model = build_model(cfg, [0])
    assert isinstance(model.cfg, FactoredMLPConfig) and model.cfg.activation == "square"
    section = OmegaConf.to_container(cfg.model)
    assert model.cfg == FactoredMLPConfig(
        **{k: v for k, v in section.items() if k not in ("kind", "transformer", "decoder")}
    )
    assert model.weights["embed"].shape == (1, 67, 8)
    x = torch.tensor([[-2.0, 3.0]])
    assert torch.equal(model.act(x), x * x)


def test_fixed_fully_collapsed_with_d_equal_n_has_nothing_to_train():
    with pytest.raises(ValueError, match="no trainable parameter"):
        settings = FactoredMLPConfig(n_neurons=2, embed="fixed", collapsed_hidden=True, collapsed_out=True)
        FactoredMLP(settings, seeds=[0], p=7)


def test_fixed_embed_is_a_constant_circle():
    E = circular_embedding(67, [1])
    torch.testing.assert_close(E.norm(dim=0), torch.ones(2, dtype=E.dtype))
    model = FactoredMLP(FactoredMLPConfig(n_neurons=5, embed="fixed"), seeds=[0], p=67)
    assert set(model.weights) == {"hidden", "out"} and model.n_trainable_per_model() == 20


def test_haiku_style_init_statistics():
    model = FactoredMLP(FactoredMLPConfig(d_embed=500, n_neurons=24), seeds=[0], p=67)
    E, Win = model.weights["embed"][0], model.weights["hidden"][0]
    assert abs(E.std().item() - (2 / 67) ** 0.5) < 0.01 * (2 / 67) ** 0.5 * 5  # variance-corrected
    assert E.abs().max() <= 2 * (2 / 67) ** 0.5 / 0.8796 + 1e-6
    assert Win.abs().max() <= 2 / 500**0.5 + 1e-6  # cut at 2 sigma, sigma = 1/sqrt(fan_in)


def test_model_in_a_batch_equals_model_alone():
    settings = FactoredMLPConfig(d_embed=8, n_neurons=6)
    alone = FactoredMLP(settings, seeds=[5], p=11)
    batch = FactoredMLP(settings, seeds=[3, 5, 9], p=11)
    for name in alone.weights:
        torch.testing.assert_close(alone.weights[name][0], batch.weights[name][1], rtol=0, atol=0)


@pytest.mark.parametrize("decay", ["l2", "none"])
def test_batched_adam_matches_torch_adamw(decay):
    torch.manual_seed(0)
    w1 = torch.nn.Parameter(torch.randn(1, 5, 4))
    w2 = torch.nn.Parameter(w1.detach().clone())
    wd = 0.5 if decay == "l2" else 0.0
    ours = BatchedAdam([w1], lr=[1e-2], weight_decay=[wd], betas=(0.9, 0.98), decay=decay)
    ref = torch.optim.AdamW([w2], lr=1e-2, weight_decay=wd, betas=(0.9, 0.98))
    for _ in range(20):
        for w, opt in ((w1, ours), (w2, ref)):
            opt.zero_grad()
            (w.sin() * torch.arange(4.0)).sum().backward()
            opt.step()
    torch.testing.assert_close(w1, w2)


def test_batched_adam_per_model_lr_and_decay_match_separate_runs():
    torch.manual_seed(0)
    init = torch.randn(3, 4, 2)
    lrs, wds = [1e-2, 3e-3, 1e-3], [1.0, 0.1, 0.0]
    joint = torch.nn.Parameter(init.clone())
    opt = BatchedAdam([joint], lr=lrs, weight_decay=wds)
    singles = [torch.nn.Parameter(init[k : k + 1].clone()) for k in range(3)]
    opts = [
        torch.optim.AdamW([s], lr=lr, weight_decay=wd, betas=(0.9, 0.98))
        for s, lr, wd in zip(singles, lrs, wds)
    ]
    for _ in range(10):
        opt.zero_grad()
        (joint**3).sum().backward()
        opt.step()
        for s, o in zip(singles, opts):
            o.zero_grad()
            (s**3).sum().backward()
            o.step()
    torch.testing.assert_close(joint, torch.cat(singles))


def test_l1_adds_sign_gradient():
    w = torch.nn.Parameter(torch.tensor([[[1.0, -2.0]]]))
    ref = torch.nn.Parameter(w.detach().clone())
    opt = BatchedAdam([w], lr=[0.1], weight_decay=[0.3], decay="l1")
    ref_opt = torch.optim.Adam([ref], lr=0.1, betas=(0.9, 0.98))
    for param, o, extra in ((w, opt, 0.0), (ref, ref_opt, 0.3)):
        o.zero_grad()
        ((param**2).sum() + extra * param.abs().sum()).backward()
        o.step()
    torch.testing.assert_close(w, ref)

"""Accelerator numerics (train.precision=tf32 | bf16): the rounding bit by bit, the rounded product
and its gradients, and both models trained with it."""

import numpy as np
import pytest
import torch

from grok_lightning import config as C
from grok_lightning import ensemble
from grok_lightning.model import PRECISIONS, FactoredMLP, FactoredMLPConfig, bmm, matmul_dtype
from grok_lightning.rounding import BF16_BITS, TF32_BITS, round_bf16, round_mantissa, round_tf32, rounded_bmm
from grok_lightning.tasks.parity import ParityMLPConfig
from grok_lightning.tasks.parity_build import ParityMLP
from tests.conftest import TINY, callbacks_off, metrics_rows, short_run_args, train_quietly


def from_bits(patterns) -> torch.Tensor:
    """uint32 bit patterns -> float32 tensor (no float op touches them: denormals survive)."""
    return torch.from_numpy(np.array(patterns, dtype=np.uint32).view(np.int32)).view(torch.float32)


def to_bits(x: torch.Tensor) -> list[int]:
    return x.view(torch.int32).numpy().view(np.uint32).tolist()


# input bits -> TF32 (10 mantissa bits: half an ulp of 1.0 is 2^-11 = 0x1000 in the pattern)
TF32_CASES = {
    0x3F801000: 0x3F800000,  # 1 + 2^-11: a tie, to the even 1.0
    0x3F803000: 0x3F804000,  # 1 + 3*2^-11: a tie, to the even 1 + 2^-9 (not down to 1 + 2^-10)
    0x3F800FFF: 0x3F800000,  # just below halfway: down
    0x3F801001: 0x3F802000,  # just above halfway: up
    0xBF801000: 0xBF800000,  # negative values round by magnitude, sign kept
    0xBF803000: 0xBF804000,
    0xBF801001: 0xBF802000,
    0x3FFFF000: 0x40000000,  # the carry moves into the exponent: 2 - 2^-11 -> 2.0
    0x7F7FE000: 0x7F7FE000,  # the largest TF32 value is exact
    0x7F7FFFFF: 0x7F800000,  # the largest float32 rounds up to Inf (round to nearest even overflows)
    0xFF7FFFFF: 0xFF800000,
    0x7F800000: 0x7F800000,  # Inf and -Inf unchanged
    0xFF800000: 0xFF800000,
    0x7FC00000: 0x7FC00000,  # NaN unchanged, even with a payload only in the dropped bits
    0x7F800001: 0x7F800001,
    0xFFFFFFFF: 0xFFFFFFFF,
    0x00003000: 0x00004000,  # denormals round on the same bit: a tie to even...
    0x00001000: 0x00000000,
    0x007FFFFF: 0x00800000,  # ...and the largest one up to the smallest normal
    0x80000001: 0x80000000,  # the smallest negative denormal to -0.0
    0x00000000: 0x00000000,  # zero and -0.0 unchanged
    0x80000000: 0x80000000,
}
BF16_CASES = {
    0x3F808000: 0x3F800000,  # 1 + 2^-8: a tie, to the even 1.0
    0x3F818000: 0x3F820000,  # 1 + 3*2^-8: a tie, to the even 1 + 2^-6
    0x3F807FFF: 0x3F800000,
    0x3F808001: 0x3F810000,
    0xC0418000: 0xC0420000,
    0x7F7F7FFF: 0x7F7F0000,  # the largest bf16 value, from below
    0x7F7FFFFF: 0x7F800000,
}


@pytest.mark.parametrize("bits, cases", [(TF32_BITS, TF32_CASES), (BF16_BITS, BF16_CASES)])
def test_round_mantissa_on_chosen_bit_patterns(bits, cases):
    x = from_bits(list(cases))
    assert [hex(v) for v in to_bits(round_mantissa(x, bits))] == [hex(v) for v in cases.values()]
    assert to_bits(round_tf32(x) if bits == TF32_BITS else round_bf16(x)) == list(cases.values())
    assert to_bits(x) == list(cases)  # the input is left alone


def test_round_mantissa_refuses_what_it_cannot_round():
    with pytest.raises(TypeError, match="float32"):
        round_mantissa(torch.ones(2, dtype=torch.float64), 10)
    with pytest.raises(ValueError, match="bits=24"):
        round_mantissa(torch.ones(2), 24)
    x = torch.randn(5)
    assert round_mantissa(x, 23) is x  # float32 itself: nothing to drop


def test_round_bf16_equals_torch_bfloat16_on_every_exponent():
    torch.set_flush_denormal(False)  # a training test may have left it on; the reference is a float op
    gen = torch.Generator().manual_seed(0)
    patterns = torch.randint(-(2**31), 2**31, (1_000_000,), generator=gen, dtype=torch.int64)
    x = patterns.to(torch.int32).view(torch.float32)  # uniform bits: every exponent, denormals, NaNs
    x = x.reshape(1000, 1000).t()  # a strided view, like a transposed operand
    ours, ref = round_bf16(x), x.to(torch.bfloat16).to(torch.float32)
    nan = torch.isnan(x)
    assert 0 < int(nan.sum()) < x.numel() and int((x.view(torch.int32) & 0x7F800000).eq(0).sum()) > 1000
    assert torch.equal(ours.view(torch.int32)[~nan], ref.view(torch.int32)[~nan])
    assert torch.equal(ours.view(torch.int32)[nan], x.view(torch.int32)[nan])  # torch quiets NaN; we keep it
    assert not torch.equal(ours, x)


@pytest.mark.parametrize("bits", [TF32_BITS, BF16_BITS])
def test_rounded_bmm_forward_and_both_gradients_use_rounded_operands(bits):
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(2, 3, 40, generator=gen, requires_grad=True)
    b = torch.randn(2, 40, 5, generator=gen, requires_grad=True)
    g = torch.randn(2, 3, 5, generator=gen)
    out = rounded_bmm(a, b, bits)
    out.backward(g)

    r = lambda t: round_mantissa(t.detach(), bits)  # noqa: E731
    same = lambda x, y: torch.equal(x.view(torch.int32), y.view(torch.int32))  # noqa: E731
    assert same(out, torch.bmm(r(a), r(b)))
    assert same(a.grad, torch.bmm(r(g), r(b).transpose(1, 2)))
    assert same(b.grad, torch.bmm(r(a).transpose(1, 2), r(g)))
    # ...and not the products of unrounded operands anywhere, g included
    assert not torch.equal(out, torch.bmm(a.detach(), b.detach()))
    assert not torch.equal(a.grad, torch.bmm(g, r(b).transpose(1, 2)))
    assert not torch.equal(b.grad, torch.bmm(r(a).transpose(1, 2), g))


def test_every_precision_is_a_choice_and_the_old_ones_multiply_as_before():
    assert set(PRECISIONS) == set(C.CHOICES["train.precision"])
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen)
    b = torch.randn(2, 4, 5, dtype=torch.float64, generator=gen)
    f32, f64 = torch.float32, torch.float64
    for precision, mm in (("32", f32), ("64", f64), ("original", f64), ("64_mm32", f32)):
        assert matmul_dtype(precision).mantissa_bits is None
        assert torch.equal(bmm(a, b, matmul_dtype(precision)), torch.bmm(a.to(mm), b.to(mm)).to(a.dtype))


def relative_change(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.detach(), ref.detach()
    return float((x - ref).norm() / ref.norm())


def test_factored_mlp_in_tf32_and_bf16_is_float32_slightly_off():
    settings, p = FactoredMLPConfig(d_embed=64, n_neurons=12), 23
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randint(0, p, (2, 2, 200), generator=gen)
    logits, grads = {}, {}
    for precision in ("32", "tf32", "bf16"):
        model = FactoredMLP(settings, seeds=[0, 1], p=p, precision=precision)
        assert model.weights["embed"].dtype == torch.float32
        logits[precision] = model(*model.encode(a, b))
        logits[precision].square().mean().backward()
        grads[precision] = model.weights["hidden"].grad
    change = {k: relative_change(logits[k], logits["32"]) for k in ("tf32", "bf16")}
    grad_change = {k: relative_change(grads[k], grads["32"]) for k in ("tf32", "bf16")}
    # one rounding of each operand is at most 2^-(bits+1) relative; a chain of products compounds it
    for precision, bits in (("tf32", TF32_BITS), ("bf16", BF16_BITS)):
        assert 0 < change[precision] < 2**-bits and 0 < grad_change[precision] < 2 ** -(bits - 2)
    # three more bits: about 8 times closer
    assert change["tf32"] < change["bf16"] / 4 and grad_change["tf32"] < grad_change["bf16"] / 4


def test_parity_mlp_in_bf16_is_float32_slightly_off():
    bits = torch.randint(0, 2, (1, 50, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    out = {}
    for precision in ("32", "bf16"):
        model = ParityMLP(ParityMLPConfig(n_neurons=8), seeds=[3], n_bits=10, precision=precision)
        out[precision] = model(*model.encode(bits))
    assert 0 < relative_change(out["bf16"], out["32"]) < 2**-BF16_BITS


def test_config_accepts_the_accelerator_precisions_and_the_ensemble_adds_them():
    assert C.load("modadd", None, ["train.precision=tf32"]).train.precision == "tf32"
    assert C.load("parity", None, ["train.precision=bf16"]).train.precision == "bf16"
    with pytest.raises(C.ConfigError, match="train.precision"):
        C.load("modadd", None, ["train.precision=fp8"])
    _, opts = ensemble.parse(["task=modadd", "train.precision=32"])
    assert opts["precisions"] == ["32", "64", "64_mm32", "tf32", "bf16"]  # the repeated 32 dropped


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_a_tiny_model_trains_in_accelerator_numerics(run_root, precision):
    overrides = [*TINY, "train.max_steps=60", f"train.precision={precision}", *callbacks_off()]
    run_dir = train_quietly("modadd", None, short_run_args(run_root, *overrides))
    losses = [float(r["train/loss"]) for r in metrics_rows(run_dir) if r["train/loss"]]
    assert len(losses) >= 5 and all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_native_tf32_is_scoped_to_the_product():
    """On CUDA the tf32 product allows TF32 only inside: other members of the process stay float32."""
    from grok_lightning.rounding import _cuda_tf32, _native

    before = torch.get_float32_matmul_precision()
    with _cuda_tf32():
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before == "highest"
    assert not _native(torch.ones(1), TF32_BITS)  # a CPU product is always the emulation

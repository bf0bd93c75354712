"""Accelerator matrix-product numerics on any device: float32 operands rounded to fewer mantissa
bits, as tensor cores read them, with float32 accumulation (train.precision=tf32 | bf16).

TF32 keeps 10 explicit mantissa bits, bfloat16 7; both keep float32's 8-bit exponent, so rounding
only clears low mantissa bits (round to nearest, ties to even) and never changes the exponent range.
A tensor-core GEMM rounds the operands of each of the three products of a training step
(forward a @ b, backward g @ b^T and a^T @ g), so RoundedBmm rounds g as well as a and b.
On CUDA, TF32 products run on the hardware's own TF32 path instead (see _native).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from functools import lru_cache

import torch
from torch.autograd.function import once_differentiable

TF32_BITS = 10
BF16_BITS = 7
_FLOAT32_BITS = 23


@lru_cache(maxsize=None)
def _constants(drop: int) -> tuple[torch.Tensor, ...]:
    """round_mantissa's int32 constants as 0-dim tensors: a Python int is wrapped anew at every op,
    which costs a tiny operand more than the op itself."""
    values = (0x7FFFFFFF, 0x7F800001, 31, drop, 1, (1 << (drop - 1)) - 1, (1 << drop) - 1)
    return tuple(torch.tensor(v, dtype=torch.int32) for v in values)


def round_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """float32 x rounded to `bits` explicit mantissa bits, to nearest with ties to even, as float32.

    Works on the int32 bit pattern: adding half an ulp of the target format minus one, plus the
    last kept bit (so exact ties go to the even neighbour), then clearing the dropped bits. A carry
    out of the mantissa moves to the next binade as it should: the largest denormal becomes the
    smallest normal, the largest finite floats become Inf. Inf is unchanged by construction; NaN
    gets no increment and keeps every bit. Only integer arithmetic, because comparisons and
    torch.where cost several times more than these ops on a CPU, and none overflows an int32.
    """
    if x.dtype != torch.float32:
        raise TypeError(f"round_mantissa takes float32, not {x.dtype}")
    if not 0 <= bits <= _FLOAT32_BITS:
        raise ValueError(f"bits={bits}: a float32 mantissa has 0 to {_FLOAT32_BITS} explicit bits")
    drop = _FLOAT32_BITS - bits
    if drop == 0:
        return x
    magnitude, above_inf, sign, shift, one, half_ulp_less_one, low = _constants(drop)
    i = x.view(torch.int32)
    # -1 (all bits set) unless NaN, whose magnitude is the only one above Inf's 0x7F800000
    not_nan = (i & magnitude).sub_(above_inf).bitwise_right_shift_(sign)
    rounded = (i >> shift).bitwise_and_(one).add_(half_ulp_less_one).bitwise_and_(not_nan).add_(i)
    dropped = not_nan.bitwise_and_(low)  # the bits to clear; none for NaN
    return rounded.bitwise_or_(dropped).bitwise_xor_(dropped).view(torch.float32)


def round_tf32(x: torch.Tensor) -> torch.Tensor:
    return round_mantissa(x, TF32_BITS)


def round_bf16(x: torch.Tensor) -> torch.Tensor:
    return round_mantissa(x, BF16_BITS)


# On CUDA, TF32 is the hardware's own: with TF32 allowed, cuBLAS reads float32 operands at TF32
# precision, so they go in unrounded; how it drops the low bits (nearest even, or not) is the GPU's,
# and the CUDA member is TF32 as that GPU computes it. bf16 stays emulated on CUDA too: a native bf16
# bmm also rounds its result to bf16, other numerics than bf16 operands with float32 accumulation
# and output, and these models are far too small for the GEMM's speed to matter.
def _native(x: torch.Tensor, bits: int) -> bool:
    return x.is_cuda and bits == TF32_BITS


@contextmanager
def _cuda_tf32():
    """TF32 for the float32 cuBLAS products inside only: a process that trains several members
    (the numerics ensemble) keeps plain float32 products for the others."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")  # = cuda.matmul.allow_tf32, on any torch version
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _operand(x: torch.Tensor, bits: int) -> torch.Tensor:
    """An operand as the GEMM reads it."""
    return x if _native(x, bits) else round_mantissa(x, bits)


def _gemm(a: torch.Tensor, b: torch.Tensor, bits: int) -> torch.Tensor:
    with _cuda_tf32() if _native(a, bits) else nullcontext():
        return torch.bmm(a, b)


class RoundedBmm(torch.autograd.Function):
    """torch.bmm(a, b) with float32 operands rounded to `bits` mantissa bits in the forward product
    and in both backward products. The rounding's own derivative is taken as 1: the gradient
    reaches the unrounded parameters, as on the accelerator."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, bits: int) -> torch.Tensor:
        a, b = _operand(a, bits), _operand(b, bits)
        ctx.bits = bits
        ctx.save_for_backward(a, b)  # saved rounded: rounding them again would change nothing
        return _gemm(a, b, bits)

    @staticmethod
    @once_differentiable
    def backward(ctx, g: torch.Tensor):
        a, b = ctx.saved_tensors
        g = _operand(g, ctx.bits)
        grad_a = _gemm(g, b.transpose(1, 2), ctx.bits) if ctx.needs_input_grad[0] else None
        grad_b = _gemm(a.transpose(1, 2), g, ctx.bits) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b, None


def rounded_bmm(a: torch.Tensor, b: torch.Tensor, bits: int) -> torch.Tensor:
    """Batched float32 product [K, m, k] @ [K, k, n] with operands rounded to `bits` mantissa bits."""
    return RoundedBmm.apply(a, b, bits)

"""Binary operations mod p for the modular-arithmetic task (`data.op`): the ones of Power et al.'s
openai/grok (grok/data.py, VALID_OPERATORS) that are functions of two residues mod p.

    name     formula (mod p)                      openai/grok key                                 pairs
    add      a + b                                "+"                                             all
    sub      a - b                                "-"                                             all
    mul      a * b                                "*"                                             all
    div      a * b^-1                (p prime)    "/"                                             b != 0
    x2y      a^2 + b                              "**2+"                                          all
    x3y      a^3 + b                              "**3+"                                          all
    x2y2     a^2 + b^2                            "x**2+y**2_mod_97"                              all
    x2xyy2   a^2 + a*b + b^2                      "x**2+y**2+x*y_mod_97"                          all
    x2xyy2x  a^2 + a*b + b^2 + a                  "x**2+y**2+x*y+x_mod_97"                        all
    x3xy     a^3 + a*b                            "x**3+x*y_mod_97"                               all
    x3xy2y   a^3 + a*b^2 + b                      "x**3+x*y**2+y_mod_97"                          all
    oddeven  a * b^-1 if b odd, else a - b (prime) "(x._value//y)if(y._value%2==1)else(x-y)_mod_97" all
    addmul   a + b if a even, else a * b          "+*"                                            all
    addsub   a + b if a even, else a - b          "+-"                                            all

"Odd" and "even" are the parity of the representative in 0..p-1. openai/grok draws every op over all
p^2 ordered pairs except division, which skips b = 0 (it writes each equation as (a*b) / b = a, so its
table is a / b = a * b^-1 over b != 0). The rest of VALID_OPERATORS (s5, s5conj, s5aba: the group S5;
sort, reverse, copy: lists) are not operations on residues mod p. openai/grok's "cube2" ends in + y
(some forks label it "x^3+xy^2+x" but compute + y). Listing only a <= b (data.symmetric, this project's
addition presets) is this project's choice, open to symmetric ops alone.

Every `fn(a, b, p)` takes numpy integer arrays or torch integer tensors (any shape, values may be >= p)
and returns the result in 0..p-1 as int64 / LongTensor. Operands are reduced mod p before every
product, so no intermediate exceeds p^2: exact for p < 2**31.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

Ints = Any  # numpy integer arrays or torch integer tensors


def _is_tensor(x) -> bool:
    """Whether x is a torch tensor, without importing torch (a config check needs none): a tensor
    exists only once torch has been imported."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin: exact for every n < 3.3e24 (fast for any size a config may hold)."""
    n = int(n)
    bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
    if n < 2:
        return False
    for q in bases:
        if n % q == 0:
            return n == q
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for base in bases:
        x = pow(base, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _residue(x: Ints, p: int) -> Ints:
    """x mod p as int64 (numpy) or LongTensor (torch), in 0..p-1."""
    if _is_tensor(x):
        return x.long() % p
    return np.asarray(x, dtype=np.int64) % p


def _where(cond: Ints, x: Ints, y: Ints) -> Ints:
    return sys.modules["torch"].where(cond, x, y) if _is_tensor(cond) else np.where(cond, x, y)


def _inverse(b: Ints, p: int) -> Ints:
    """b^(p-2) mod p by squaring (b already reduced): b's inverse when p is prime and b != 0."""
    result, base, e = b * 0 + 1, b, p - 2
    while e > 0:
        if e & 1:
            result = result * base % p
        base = base * base % p
        e >>= 1
    return result % p


def _add(a, b, p):
    return (_residue(a, p) + _residue(b, p)) % p


def _sub(a, b, p):
    return (_residue(a, p) - _residue(b, p)) % p


def _mul(a, b, p):
    return _residue(a, p) * _residue(b, p) % p


def _div(a, b, p):
    return _residue(a, p) * _inverse(_residue(b, p), p) % p


def _x2y(a, b, p):
    a, b = _residue(a, p), _residue(b, p)
    return (a * a % p + b) % p


def _x3y(a, b, p):
    a, b = _residue(a, p), _residue(b, p)
    return (a * a % p * a % p + b) % p


def _x2y2(a, b, p):
    a, b = _residue(a, p), _residue(b, p)
    return (a * a % p + b * b % p) % p


def _x2xyy2(a, b, p):
    a, b = _residue(a, p), _residue(b, p)
    return (a * a % p + a * b % p + b * b % p) % p


def _x2xyy2x(a, b, p):
    a, b = _residue(a, p), _residue(b, p)
    return (a * a % p + a * b % p + b * b % p + a) % p


def _x3xy(a, b, p):
    a, b = _residue(a, p), _residue(b, p)
    return (a * a % p * a % p + a * b % p) % p


def _x3xy2y(a, b, p):
    a, b = _residue(a, p), _residue(b, p)
    return (a * a % p * a % p + a * (b * b % p) % p + b) % p


def _oddeven(a, b, p):
    a, b = _residue(a, p), _residue(b, p)
    return _where(b % 2 == 1, a * _inverse(b, p) % p, (a - b) % p)


def _addmul(a, b, p):
    a, b = _residue(a, p), _residue(b, p)
    return _where(a % 2 == 0, (a + b) % p, a * b % p)


def _addsub(a, b, p):
    a, b = _residue(a, p), _residue(b, p)
    return _where(a % 2 == 0, (a + b) % p, (a - b) % p)


@dataclass(frozen=True)
class Operation:
    """One binary operation mod p: `fn(a, b, p)` -> (a op b) mod p; `symmetric`: f(a, b) == f(b, a)
    for all a, b (then a split may list only a <= b); `needs_prime`: defined mod p only for prime p
    (it divides); `nonzero_b`: b = 0 is excluded from the pairs."""

    name: str
    fn: Callable[[Ints, Ints, int], Ints]
    symmetric: bool
    needs_prime: bool
    nonzero_b: bool
    formula: str


OPS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("add", _add, True, False, False, "a + b"),
        Operation("sub", _sub, False, False, False, "a - b"),
        Operation("mul", _mul, True, False, False, "a * b"),
        Operation("div", _div, False, True, True, "a / b = a * b^-1 (b != 0)"),
        Operation("x2y", _x2y, False, False, False, "a^2 + b"),
        Operation("x3y", _x3y, False, False, False, "a^3 + b"),
        Operation("x2y2", _x2y2, True, False, False, "a^2 + b^2"),
        Operation("x2xyy2", _x2xyy2, True, False, False, "a^2 + a*b + b^2"),
        Operation("x2xyy2x", _x2xyy2x, False, False, False, "a^2 + a*b + b^2 + a"),
        Operation("x3xy", _x3xy, False, False, False, "a^3 + a*b"),
        Operation("x3xy2y", _x3xy2y, False, False, False, "a^3 + a*b^2 + b"),
        Operation("oddeven", _oddeven, False, True, False, "a / b if b is odd, else a - b"),
        Operation("addmul", _addmul, False, False, False, "a + b if a is even, else a * b"),
        Operation("addsub", _addsub, False, False, False, "a + b if a is even, else a - b"),
    )
}


def get(op: Union[str, Operation]) -> Operation:
    if isinstance(op, Operation):
        return op
    if op not in OPS:
        raise ValueError(f"unknown operation {op!r}; available: {', '.join(OPS)}")
    return OPS[op]


def pairs(p: int, op: Union[str, Operation], symmetric: bool, nonzero_b: bool = False) -> np.ndarray:
    """[N, 2] int64 operand pairs of `op` mod p, listed a-outer b-inner: only a <= b when symmetric
    (p(p+1)/2 for add), else all ordered pairs; without b = 0 for ops that divide by b, and for any op
    when `nonzero_b` (Grokfast's multiplication table: b in 1..p-1)."""
    operation = get(op)
    if symmetric and not operation.symmetric:
        raise ValueError(f"operation {operation.name} is not symmetric: it needs all ordered pairs")
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    a, b = a.ravel(), b.ravel()
    keep = a <= b if symmetric else np.ones_like(a, dtype=bool)
    if operation.nonzero_b or nonzero_b:
        keep &= b != 0
    return np.stack([a[keep], b[keep]], axis=1)

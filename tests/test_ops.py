"""data.op: every operation mod p against a brute-force Python table, its flags, its pairs, the config
errors, and addition's split kept bit for bit."""

import numpy as np
import pytest
import torch

from grok_lightning import config as C
from grok_lightning.tasks import TASKS, modadd
from grok_lightning.tasks.modadd_data import ModAddDataModule
from grok_lightning.tasks.operations import OPS, is_prime, pairs
from tests.conftest import TINY


def _inv(b: int, p: int) -> int:
    return pow(b, -1, p)


# Written from openai/grok's definitions with Python ints, independently of operations.py.
BRUTE = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: (a * _inv(b, p)) % p,
    "x2y": lambda a, b, p: (a**2 + b) % p,
    "x3y": lambda a, b, p: (a**3 + b) % p,
    "x2y2": lambda a, b, p: (a**2 + b**2) % p,
    "x2xyy2": lambda a, b, p: (a**2 + b**2 + a * b) % p,
    "x2xyy2x": lambda a, b, p: (a**2 + b**2 + a * b + a) % p,
    "x3xy": lambda a, b, p: (a**3 + a * b) % p,
    "x3xy2y": lambda a, b, p: (a**3 + a * b**2 + b) % p,
    "oddeven": lambda a, b, p: (a * _inv(b, p)) % p if b % 2 == 1 else (a - b) % p,
    "addmul": lambda a, b, p: (a + b) % p if a % 2 == 0 else (a * b) % p,
    "addsub": lambda a, b, p: (a + b) % p if a % 2 == 0 else (a - b) % p,
}
SMALL_PRIMES = (7, 11)


def test_every_op_has_a_brute_force_reference():
    assert set(BRUTE) == set(OPS)
    assert all(name.isascii() and name.isidentifier() and name.islower() for name in OPS)


@pytest.mark.parametrize("p", SMALL_PRIMES)
@pytest.mark.parametrize("name", list(OPS))
def test_labels_equal_brute_force_on_every_pair(name, p):
    op = OPS[name]
    grid = pairs(p, name, symmetric=False)
    expected_pairs = [(a, b) for a in range(p) for b in range(p) if not (op.nonzero_b and b == 0)]
    assert grid.tolist() == [list(ab) for ab in expected_pairs]
    expected = [BRUTE[name](a, b, p) for a, b in expected_pairs]
    labels = op.fn(grid[:, 0], grid[:, 1], p)
    assert labels.dtype == np.int64 and labels.tolist() == expected
    as_torch = op.fn(torch.as_tensor(grid[:, 0]), torch.as_tensor(grid[:, 1]), p)
    assert as_torch.dtype == torch.int64 and as_torch.tolist() == expected


@pytest.mark.parametrize("p", SMALL_PRIMES)
@pytest.mark.parametrize("name", list(OPS))
def test_symmetric_flag_is_the_tables_symmetry(name, p):
    op = OPS[name]
    values = range(1 if op.nonzero_b else 0, p)
    table = {(a, b): BRUTE[name](a, b, p) for a in values for b in values}
    assert op.symmetric == all(table[a, b] == table[b, a] for a, b in table)


@pytest.mark.parametrize("name", list(OPS))
def test_symmetric_pairs_only_for_symmetric_ops(name):
    if OPS[name].symmetric:
        assert pairs(11, name, symmetric=True).tolist() == [[a, b] for a in range(11) for b in range(a, 11)]
    else:
        with pytest.raises(ValueError, match="not symmetric"):
            pairs(11, name, symmetric=True)


@pytest.mark.parametrize("p", SMALL_PRIMES)
def test_division_skips_zero_and_inverts_multiplication(p):
    grid = pairs(p, "div", symmetric=False)
    a, b = grid[:, 0], grid[:, 1]
    assert len(grid) == p * (p - 1) and (b != 0).all()
    q = OPS["div"].fn(a, b, p)
    assert ((q * b) % p == a).all()
    assert OPS["div"].needs_prime and OPS["div"].nonzero_b
    assert [name for name, op in OPS.items() if op.nonzero_b] == ["div"]
    assert {name for name, op in OPS.items() if op.needs_prime} == {"div", "oddeven"}


def test_large_p_does_not_overflow():
    rng = np.random.default_rng(0)
    for p in (9973, 2**31 - 1):
        a = np.array([p - 1, p - 2, p - 1, p // 2, 1, 0, *rng.integers(0, p, 20)], dtype=np.int64)
        b = np.array([p - 1, p - 1, p - 3, p - 1, p - 1, p - 1, *rng.integers(1, p, 20)], dtype=np.int64)
        for name, op in OPS.items():
            expected = [BRUTE[name](int(x), int(y), p) for x, y in zip(a, b)]
            assert op.fn(a, b, p).tolist() == expected, (name, p)
            assert op.fn(torch.as_tensor(a), torch.as_tensor(b), p).tolist() == expected, (name, p)
    p, x, y = 9973, 9972, 9971
    assert OPS["x3xy2y"].fn(np.array([x]), np.array([y]), p).tolist() == [(x**3 + x * y**2 + y) % p]


def test_is_prime_matches_trial_division():
    def trial(n):
        return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))

    assert [n for n in range(3000) if is_prime(n)] == [n for n in range(3000) if trial(n)]
    assert is_prime(9973) and is_prime(2**31 - 1) and is_prime(1000003) and not is_prime(2**32 + 1)


def test_add_keeps_todays_split_bit_for_bit():
    """The presets replay the original notebooks' splits: pairs a <= b listed a-outer b-inner, the first
    int(0.4 n) of RandomState(seed).permutation(n) for training, targets (a + b) mod p."""
    p, seed = 67, 165
    listed = np.array([(a, b) for a in range(p) for b in range(a, p)], dtype=np.int64)
    perm = np.random.RandomState(seed).permutation(len(listed))
    n_train = int(0.4 * len(listed))
    assert (modadd.all_pairs(p, True) == listed).all()
    for dm in (ModAddDataModule(p, 0.4, [seed]), ModAddDataModule(p, 0.4, [seed], True, op="add")):
        for inputs, targets, rows in (
            (dm.train_inputs, dm.train_targets, perm[:n_train]),
            (dm.test_inputs, dm.test_targets, perm[n_train:]),
        ):
            assert inputs[0].dtype == inputs[1].dtype == targets.dtype == torch.int64
            assert torch.equal(torch.stack(inputs, -1)[0], torch.as_tensor(listed[rows]))
            assert torch.equal(targets[0], torch.as_tensor(listed[rows].sum(1) % p))


def test_other_ops_split_their_own_pairs_the_same_way():
    p, seed = 11, 3
    dm = ModAddDataModule(p, 0.5, [seed], symmetric=False, op="div")
    listed = np.array([(a, b) for a in range(p) for b in range(1, p)], dtype=np.int64)
    perm = np.random.RandomState(seed).permutation(len(listed))
    train = torch.stack(dm.train_inputs, -1)[0]
    assert torch.equal(train, torch.as_tensor(listed[perm[: len(listed) // 2]]))
    assert dm.train_targets[0].tolist() == [BRUTE["div"](a, b, p) for a, b in train.tolist()]
    test = torch.stack(dm.test_inputs, -1)[0]
    assert dm.test_targets[0].tolist() == [BRUTE["div"](a, b, p) for a, b in test.tolist()]
    with pytest.raises(ValueError, match="prime"):
        ModAddDataModule(12, 0.5, [seed], symmetric=False, op="div")


@pytest.mark.parametrize("task", ["modadd", "fixed_embed"])
def test_config_op_reaches_the_targets(task):
    cfg = C.load(task, None, [*TINY, "data.op=x2xyy2", "data.symmetric=false"])
    dm = TASKS[task].build_datamodule(cfg, [5])
    pairs_ = torch.stack(dm.train_inputs, -1)[0].tolist()
    assert len(pairs_) == int(cfg.data.train_fraction * 121) and dm.op == "x2xyy2"
    assert dm.train_targets[0].tolist() == [BRUTE["x2xyy2"](a, b, 11) for a, b in pairs_]


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["data.op=div", "data.p=68", "data.symmetric=false"], "data.op=div needs a prime data.p; 68 is not"),
        (["data.op=oddeven", "data.p=9", "data.symmetric=false"], "data.op=oddeven needs a prime data.p"),
        (["data.op=sub"], "data.op=sub is not symmetric: set data.symmetric=false"),
        (["data.op=div"], "data.symmetric=false"),
        (["data.op=pow9"], "data.op='pow9' is not one of add, sub, mul, div"),
    ],
)
def test_bad_op_configs_are_one_line_errors_naming_the_key(overrides, named):
    with pytest.raises(C.ConfigError) as err:
        C.load("modadd", None, overrides)
    assert named in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", list(OPS))
def test_every_op_loads_with_a_fitting_symmetric_flag(name):
    symmetric = OPS[name].symmetric
    # a non-symmetric op also needs an MLP whose input tells a from b (a Win per side)
    model = [] if symmetric else ["model.tied_hidden=false"]
    cfg = C.load("modadd", None, [f"data.op={name}", f"data.symmetric={str(symmetric).lower()}", *model])
    assert cfg.data.op == name and C.load("modadd", None, []).data.op == "add"


def test_a_non_symmetric_op_on_an_mlp_that_cannot_tell_a_from_b_is_refused():
    with pytest.raises(C.ConfigError, match="set model.tied_hidden=false or model.embed=untied"):
        C.load("modadd", None, ["data.op=sub", "data.symmetric=false"])
    for fix in ("model.tied_hidden=false", "model.embed=untied"):
        assert C.load("modadd", None, ["data.op=sub", "data.symmetric=false", fix]).data.op == "sub"


def test_the_command_line_rejects_a_bad_op_with_one_line_and_writes_nothing(tmp_path, capsys):
    from grok_lightning.train import main

    root = tmp_path / "runs"
    assert main(["task=modadd", f"run_root={root}", "logger=csv", *TINY, "data.op=sub"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "data.symmetric=false" in err
    assert not root.exists()


def test_nonzero_b_leaves_out_b_zero_for_any_op():
    """data.nonzero_b: Grokfast's multiplication table, a in 0..p-1 and b in 1..p-1, a-major."""
    grid = pairs(7, "mul", symmetric=False, nonzero_b=True)
    assert grid.tolist() == [[a, b] for a in range(7) for b in range(1, 7)]
    assert pairs(7, "add", symmetric=True, nonzero_b=True).tolist() == [
        [a, b] for a in range(7) for b in range(max(a, 1), 7)
    ]

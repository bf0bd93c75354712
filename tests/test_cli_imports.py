"""A config error, --help and print_config=true answer before torch, Lightning, W&B, matplotlib or
jax are imported: those cost seconds on a 2-core machine (issue: a CLI that answers at once)."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "lightning", "wandb", "matplotlib", "jax", "torchmetrics")
PROBE = """
import sys
from grok_lightning.train import main
code = main(sys.argv[1:])
heavy = [m for m in {heavy!r} if m in sys.modules]
print("CODE", code, "HEAVY", ",".join(heavy) or "-")
"""


@pytest.mark.parametrize(
    "args, code",
    [
        (["task=modadd", "optim.lrr=1"], 2),  # a mistyped key
        (["task=parity", "model.n_neurons=-1"], 2),  # an impossible value
        (["task=nope"], 2),
        (["--help"], 0),
        (["task=modadd", "print_config=true"], 0),
        (["task=modadd", "preset=transformer", "print_config=true"], 0),
        (["task=fixed_embed", "print_config=true"], 0),
    ],
)
def test_cli_answers_without_the_heavy_libraries(args, code):
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True, timeout=120
    )
    last = out.stdout.strip().splitlines()[-1]
    assert last == f"CODE {code} HEAVY -", (last, out.stderr[-500:])

"""The constructed solution of the article's Appendix A, checked on every pair.

On the frequency-1 circle embedding E (the `fixed` embedding of FactoredMLP), N neurons evenly
spaced, theta = 2 pi / N:  Win column i = (cos i theta, sin i theta),  Wout row i =
(cos 2 i theta, sin 2 i theta). With x^2 activation the logit of class c works out to

    sum_i (cos(wa - i theta) + cos(wb - i theta))^2 cos(wc - 2 i theta)
        = (N / 2) * 2 cos^2(w (a - b) / 2) cos(w (a + b - c)),   w = 2 pi / M,

because the other terms are sums of cos(... - j i theta) over a full turn, which vanish when N
divides neither 2 nor 4 (so N > 4 is enough; N = 3 also works). Hence argmax_c = (a + b) mod M
whenever cos(w (a - b) / 2) != 0, i.e. always for odd M; for even M the pairs with a - b = +-M/2
give (numerically) all-zero logits. ReLU keeps only part of each wave: approximate.

    python -m grok_lightning.construct --neurons 5 --activation square [--modulus 67]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

from grok_lightning.model import FactoredMLP
from grok_lightning.tasks.modadd import all_pairs


def construct_params(n_neurons: int) -> dict[str, np.ndarray]:
    """The Appendix A weights in FactoredMLP's names: hidden (Win) [2, N], out (Wout) [N, 2]."""
    angle = 2 * math.pi * np.arange(n_neurons) / n_neurons
    hidden = np.stack([np.cos(angle), np.sin(angle)])
    out = np.stack([np.cos(2 * angle), np.sin(2 * angle)], axis=1)
    return {"hidden": hidden, "out": out}


def construct_model(n_neurons: int, modulus: int = 67, activation: str = "square") -> FactoredMLP:
    """A float64 FactoredMLP on the fixed frequency-1 circle holding the constructed weights;
    its W_input [1, M, N] and W_output [1, N, M] are the collapsed matrices."""
    model = FactoredMLP(
        seeds=[0], p=modulus, d_embed=2, n_neurons=n_neurons, embed="fixed", freqs=[1],
        activation=activation, precision="64",
    )
    model.load_model_params(0, construct_params(n_neurons))
    return model


@torch.no_grad()
def check_all_pairs(model: FactoredMLP) -> tuple[int, int]:
    """(correct, total) over all M^2 ordered pairs: argmax of the logits vs (a + b) mod M."""
    p = model.p
    pairs = torch.as_tensor(all_pairs(p, symmetric=False))
    a, b = pairs[None, :, 0], pairs[None, :, 1]
    predicted = model(*model.encode(a, b)).argmax(-1)
    return int((predicted == (a + b) % p).sum()), pairs.shape[0]


def accuracy(n_neurons: int, modulus: int = 67, activation: str = "square") -> float:
    correct, total = check_all_pairs(construct_model(n_neurons, modulus, activation))
    return correct / total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check the Appendix A constructed solution on every pair.")
    parser.add_argument("--neurons", type=int, default=5, help="N, evenly spaced on the circle")
    parser.add_argument("--activation", choices=("square", "relu"), default="square")
    parser.add_argument("--modulus", type=int, default=67, help="M")
    args = parser.parse_args(argv)
    if args.neurons < 1 or args.modulus < 3:
        parser.error("need --neurons >= 1 and --modulus >= 3")
    model = construct_model(args.neurons, args.modulus, args.activation)
    correct, total = check_all_pairs(model)
    print(
        f"N={args.neurons} neurons, M={args.modulus}, {args.activation}: "
        f"{correct}/{total} pairs correct, accuracy {correct / total:.6f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

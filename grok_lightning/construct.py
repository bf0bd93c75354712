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

    python -m grok_lightning.construct --neurons 5 --activation square [--modulus 67] [--out construct]

Besides the check it writes <out>/appendix_a_N<N>_<activation>.png (the collapsed W_input and
W_output of every neuron on the frequency-1 circle: the output side turns twice as fast) and
<out>/accuracy_table.csv (accuracy over N = 3..12 and both activations, at this M).
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

import numpy as np
import torch

from grok_lightning import fourier, runs
from grok_lightning.model import FactoredMLP, FactoredMLPConfig
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
    settings = FactoredMLPConfig(n_neurons=n_neurons, embed="fixed", freqs=[1], activation=activation)
    model = FactoredMLP(settings, seeds=[0], p=modulus, precision="64")
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


TABLE_NEURONS = range(3, 13)


def accuracy_table(modulus: int) -> list[dict]:
    """Accuracy on every ordered pair for N = 3..12 and each activation."""
    return [
        {"neurons": n, "activation": act, "accuracy": accuracy(n, modulus, act)}
        for n in TABLE_NEURONS
        for act in ("square", "relu")
    ]


def circle_figure(model: FactoredMLP, title: str):
    """The construction's neurons on the frequency-1 circle, input side beside output side."""
    from grok_lightning.figures import neuron_circles

    with torch.no_grad():
        W_in, W_out = model.W_input[0], model.W_output[0]
        dft_in, dft_out = fourier.dft_input(W_in), fourier.dft_output(W_out)
        freqs = torch.ones(W_in.shape[-1], dtype=torch.long)
        in_xy = fourier.neuron_phases(dft_in, freqs).numpy()
        out_xy = fourier.neuron_phases(dft_out, freqs).numpy()
    return neuron_circles(in_xy, out_xy, title=title + "\nthe output side turns twice as fast")


def write_outputs(model: FactoredMLP, args, correct: int, total: int) -> tuple[Path, Path]:
    from grok_lightning.figures import save_png

    out = Path(args.out)
    title = (
        f"Appendix A: N={args.neurons}, M={args.modulus}, {args.activation}: {correct}/{total} pairs correct"
    )
    fig_path = save_png(
        circle_figure(model, title), out / f"appendix_a_N{args.neurons}_{args.activation}.png"
    )
    rows = accuracy_table(args.modulus)
    buf = io.StringIO()
    buf.write("neurons,activation,accuracy\n")
    for r in rows:
        buf.write(f"{r['neurons']},{r['activation']},{r['accuracy']:.6f}\n")
    table_path = out / "accuracy_table.csv"
    runs.atomic_write_text(table_path, buf.getvalue())
    print(f"accuracy over every pair, M={args.modulus}:")
    print("  N      " + " ".join(f"{n:>6d}" for n in TABLE_NEURONS))
    for act in ("square", "relu"):
        print(f"  {act:<6s} " + " ".join(f"{r['accuracy']:6.3f}" for r in rows if r["activation"] == act))
    return fig_path, table_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check the Appendix A constructed solution on every pair.")
    parser.add_argument("--neurons", type=int, default=5, help="N, evenly spaced on the circle")
    parser.add_argument("--activation", choices=("square", "relu"), default="square")
    parser.add_argument("--modulus", type=int, default=67, help="M")
    parser.add_argument("--out", default="construct", help="folder for the figure and the accuracy table")
    args = parser.parse_args(argv)
    if args.neurons < 1 or args.modulus < 3:
        parser.error("need --neurons >= 1 and --modulus >= 3")
    model = construct_model(args.neurons, args.modulus, args.activation)
    correct, total = check_all_pairs(model)
    print(
        f"N={args.neurons} neurons, M={args.modulus}, {args.activation}: "
        f"{correct}/{total} pairs correct, accuracy {correct / total:.6f}"
    )
    fig_path, table_path = write_outputs(model, args, correct, total)
    print(f"figure: {fig_path}\ntable: {table_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

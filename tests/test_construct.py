"""Appendix A: the constructed circle solution, checked on every ordered pair."""

import math

import pytest
import torch

from grok_lightning.construct import accuracy, check_all_pairs, construct_model, main
from tests.conftest import read_csv_rows

ODD_M = [5, 7, 31, 67, 97]


@pytest.mark.parametrize("modulus", ODD_M)
@pytest.mark.parametrize("n_neurons", [5, 6, 7, 8, 12])
def test_square_is_exact_for_more_than_four_neurons(n_neurons, modulus):
    correct, total = check_all_pairs(construct_model(n_neurons, modulus, "square"))
    assert total == modulus**2 and correct == total


@pytest.mark.parametrize("n_neurons", [1, 2, 4])
def test_square_needs_neurons_that_cancel(n_neurons):
    # the leftover sum of cos(... - 2 i theta) or cos(... - 4 i theta) does not vanish: N divides 2 or 4
    assert accuracy(n_neurons, 67, "square") < 0.05


def test_square_even_modulus_fails_only_where_the_amplitude_vanishes():
    # cos(w (a - b) / 2) = 0 when a - b = +-M/2: every logit is ~0 there, elsewhere exact
    M = 64
    model = construct_model(5, M, "square")
    a, b = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    predicted = model(*model.encode(a.reshape(1, -1), b.reshape(1, -1))).argmax(-1).view(M, M)
    wrong = predicted != (a + b) % M
    assert wrong.any()
    assert torch.all((a - b)[wrong].remainder(M) == M // 2)


@pytest.mark.parametrize("modulus", ODD_M)
@pytest.mark.parametrize("n_neurons", [5, 7, 9, 11])
def test_relu_is_exact_for_odd_neuron_counts_on_odd_moduli(n_neurons, modulus):
    # measured, not proven: with an odd number of neurons no two are opposite on the circle
    assert accuracy(n_neurons, modulus, "relu") == 1.0


def test_relu_is_only_approximate_in_general():
    # measured at M = 67: N = 6 gets 19.4% of pairs, N = 8 64.2% (opposite neurons pair up into |x|)
    assert accuracy(6, 67, "relu") < 0.25
    assert 0.5 < accuracy(8, 67, "relu") < 0.75
    assert accuracy(3, 67, "relu") < 0.05  # while square is exact with three neurons
    assert accuracy(3, 67, "square") == 1.0


def test_constructed_weights():
    model = construct_model(5, 67)
    W_in, W_out = model.W_input[0], model.W_output[0]
    assert W_in.shape == (67, 5) and W_out.shape == (5, 67)
    hidden, out = model.weights["hidden"][0], model.weights["out"][0]
    theta_in = torch.atan2(hidden[1], hidden[0])
    theta_out = torch.atan2(out[:, 1], out[:, 0])
    # W_out-proj turns twice as fast as W_in-proj
    torch.testing.assert_close(
        torch.remainder(theta_out - 2 * theta_in + math.pi, 2 * math.pi),
        torch.full((5,), math.pi, dtype=torch.float64),
    )
    assert model.n_trainable_per_model() == 20


def test_cli(capsys, tmp_path):
    out = ["--out", str(tmp_path)]
    assert main(["--neurons", "5", "--activation", "square", *out]) == 0
    assert "4489/4489 pairs correct, accuracy 1.000000" in capsys.readouterr().out
    assert main(["--neurons", "6", "--activation", "relu", "--modulus", "67", *out]) == 0
    assert "accuracy 0.19" in capsys.readouterr().out


def test_cli_writes_the_circle_figure_and_the_accuracy_table(tmp_path, capsys):
    from grok_lightning import construct

    assert construct.main(["--neurons", "5", "--modulus", "13", "--out", str(tmp_path)]) == 0
    png = tmp_path / "appendix_a_N5_square.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    rows = read_csv_rows(tmp_path / "accuracy_table.csv")
    assert len(rows) == 2 * len(construct.TABLE_NEURONS)
    for r in rows[:6]:  # each entry is the exhaustive check, not a copy
        assert float(r["accuracy"]) == pytest.approx(
            construct.accuracy(int(r["neurons"]), 13, r["activation"]), abs=1e-6
        )
    assert "169/169 pairs correct" in capsys.readouterr().out

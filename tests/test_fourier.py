"""Fourier analysis (docs/experiments.md, "Fourier analysis") against matrices with a known answer."""

import math

import pytest
import torch
import torch.nn.functional as F

from grok_lightning import fourier as fo

P = 67


def wave(freq, phase=0.0, p=P):
    n = torch.arange(p, dtype=torch.float64)
    return torch.cos(2 * math.pi * freq * n / p + phase)


def ce(logits, targets):
    K, N, C = logits.shape
    return (
        F.cross_entropy(logits.reshape(K * N, C), targets.reshape(K * N), reduction="none").view(K, N).mean(1)
    )


@pytest.mark.parametrize("p", [67, 8, 2, 13])
def test_basis_is_orthonormal_with_the_spec_layout(p):
    Fb = fo.fourier_basis(p)
    assert torch.allclose(Fb @ Fb.T, torch.eye(p, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(Fb[0], torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64))
    if p > 2:
        assert torch.allclose(Fb[1], wave(1, p=p) / wave(1, p=p).norm())  # row 2k-1: cos k
        assert torch.allclose(
            Fb[2], -wave(1, math.pi / 2, p) / wave(1, math.pi / 2, p).norm()
        )  # row 2k: sin k
    assert len(fo.basis_labels(p)) == p


def test_pure_cosine_at_7_is_found_as_7_with_gini_near_1():
    phases = torch.linspace(0, 2 * math.pi, 12)
    W_in = torch.stack([3 * wave(7, float(ph)) for ph in phases], dim=1)  # [p, 12], any phase
    dft = fo.dft_input(W_in)
    assert fo.neuron_frequencies(dft).tolist() == [7] * 12
    assert fo.frequency_gini(dft) > 0.96  # one of 33 frequencies: (33 - 1) / 33
    assert fo.top_k_energy_share(dft, 1) == pytest.approx(1.0)
    assert fo.key_frequencies(dft) == [7]
    assert torch.allclose(fo.inverse_participation_ratio(dft), torch.ones(12, dtype=torch.float64))
    # the (cos, sin) pair at 7 turns with the phase: angle = -phase, radius = 3 sqrt(p / 2)
    xy = fo.neuron_phases(dft, fo.neuron_frequencies(dft))
    assert torch.allclose(xy.norm(dim=-1), torch.full((12,), 3 * math.sqrt(P / 2), dtype=torch.float64))
    angles = torch.atan2(-xy[:, 1], xy[:, 0]).remainder(2 * math.pi)
    assert torch.allclose(torch.cos(angles), torch.cos(phases.double()), atol=1e-9)


def test_output_side_dft_transposes():
    W_out = torch.stack([wave(5), wave(9)], dim=0)  # [n=2, p]
    assert fo.neuron_frequencies(fo.dft_input(W_out.T)).tolist() == [5, 9]
    assert torch.allclose(fo.dft_output(W_out), fo.dft_input(W_out.T))


def test_random_gaussian_weights_are_not_sparse():
    gen = torch.Generator().manual_seed(0)
    W_in = torch.randn(8, P, 24, generator=gen, dtype=torch.float64)
    W_out = torch.randn(8, 24, P, generator=gen, dtype=torch.float64)
    m = fo.sparsity_measures(W_in, W_out, top_k=5)
    assert all(v.shape == (8,) for v in m.values())
    assert (m["in_gini"] < 0.15).all() and (m["out_gini"] < 0.15).all()
    assert (m["in_top5_energy"] < 0.3).all()  # uniform would be 5 / 33 = 0.15
    assert (m["in_n_key_freqs"] == 0).all()
    assert (m["in_ipr"] < 0.1).all()


def test_batched_matches_unbatched_and_groups():
    W = torch.stack(
        [
            torch.stack([wave(3), wave(3, 1.0), wave(11), wave(20, 2.0)], 1),
            torch.stack([wave(4), wave(4), wave(4), wave(4)], 1),
        ]
    )  # [2, p, 4]
    freqs = fo.neuron_frequencies(fo.dft_input(W))
    assert freqs.tolist() == [[3, 3, 11, 20], [4, 4, 4, 4]]
    assert fo.group_by_frequency(freqs[0]) == {3: [0, 1], 11: [2], 20: [3]}
    assert torch.allclose(fo.frequency_gini(fo.dft_input(W))[0], fo.frequency_gini(fo.dft_input(W[0])))


def test_gini_known_values():
    assert fo.gini(torch.ones(10)) == pytest.approx(0.0)
    assert fo.gini(torch.tensor([0.0, 0.0, 0.0, 5.0])) == pytest.approx(0.75)
    assert fo.gini(torch.zeros(4)) == 0


def constructed(freqs=(1, 5), n_per=8):
    """Appendix A's circle construction at each frequency: in-phase i*theta, out-phase 2*i*theta."""
    theta = 2 * math.pi / n_per
    W_in = torch.stack([wave(f, i * theta) for f in freqs for i in range(n_per)], 1)
    W_out = torch.stack([wave(f, 2 * i * theta) for f in freqs for i in range(n_per)], 0)
    return W_in, W_out


def test_progress_measures_on_the_construction():
    W_in, W_out = constructed()
    square = lambda h: h * h  # noqa: E731
    grid = fo.logit_grid(W_in, W_in, W_out, square)
    a = torch.arange(P)
    assert (grid.argmax(-1) == (a[:, None] + a[None, :]) % P).all()  # exact with x^2
    key_mask = fo.key_frequency_mask(fo.dft_input(W_in))[None]
    assert fo.key_frequencies(fo.dft_input(W_in)) == [1, 5]
    # key-frequency part of the logits is a table over s = a + b: same for (a, b) and (a + 1, b - 1)
    key_part = fo.key_frequency_logits(grid[None], key_mask)
    assert key_part.shape == (1, P, P)
    # train on a few pairs; targets are (a + b) mod p
    gen = torch.Generator().manual_seed(1)
    A, B = torch.randint(0, P, (1, 300), generator=gen), torch.randint(0, P, (1, 300), generator=gen)
    targets = (A + B) % P
    train_logits = grid[A[0], B[0]][None]
    full = ce(train_logits, targets)
    pm = fo.progress_measures(
        W_in[None], W_in[None], W_out[None], square, key_mask, train_logits, targets, ce
    )
    assert pm["restricted_loss"] <= full * 1.01  # the key frequencies carry the whole solution
    assert pm["excluded_loss"] > 3 * full  # and removing them destroys it
    # with no key frequency the restricted logits are flat: loss = log p
    none = torch.zeros_like(key_mask)
    pm0 = fo.progress_measures(W_in[None], W_in[None], W_out[None], square, none, train_logits, targets, ce)
    assert pm0["restricted_loss"].item() == pytest.approx(math.log(P))
    assert torch.allclose(pm0["excluded_loss"], full)


def test_frequency_group_waves_are_cosines_of_a_plus_b_minus_c():
    W_in, W_out = constructed()
    freqs = fo.neuron_frequencies(fo.dft_input(W_in))
    waves = fo.frequency_group_waves(W_in, W_in, W_out, lambda h: h * h, freqs)
    assert [w["freq"] for w in waves] == [1, 5]
    for w in waves:
        assert w["r2"] > 0.6  # (cos x + cos y)^2: the a + b - c term is 2/3 of the variance
        d = torch.arange(P, dtype=torch.float64)
        target = torch.cos(2 * math.pi * w["freq"] * d / P)
        assert torch.corrcoef(torch.stack([w["wave"], target]))[0, 1] > 0.99


def test_first_bits_mass_share():
    W = torch.zeros(2, 31, 4)
    W[0, :3] = 1.0
    W[0, 30] = 100.0  # the bias row does not count
    W[1] = 1.0
    share = fo.first_bits_mass_share(W, 3)
    assert share.tolist() == pytest.approx([1.0, 0.1])


def test_star_pairs_output_turns_twice_as_fast_on_the_construction():
    from grok_lightning.callbacks.fourier_stars import star_groups

    W_in, W_out = constructed(freqs=(3,), n_per=6)
    (group,) = star_groups(W_in, W_out)
    assert group["freq"] == 3 and group["neurons"] == list(range(6))
    a_in = torch.atan2(group["in_xy"][:, 1], group["in_xy"][:, 0])
    a_out = torch.atan2(group["out_xy"][:, 1], group["out_xy"][:, 0])
    assert torch.allclose(torch.cos(a_out - 2 * a_in), torch.ones(6, dtype=torch.float64), atol=1e-9)

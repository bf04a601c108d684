"""Statistics of the structured dropout layers against exact probabilities (hand-derived
or enumerated)."""

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")

N_MC = 20000


def _within(estimate, exact, se, k=5.0):
    estimate = np.asarray(estimate, dtype=float)
    exact = np.asarray(exact, dtype=float)
    assert np.all(np.abs(estimate - exact) <= k * np.asarray(se) + 1e-12), (estimate, exact, se)


# ---------------------------------------------------------------- DropBlock1d
def test_dropblock_blocks_dropped_together_and_mean_preserved():
    torch.manual_seed(0)
    theta, r, d = 0.3, 4, 12
    layer = sdt.DropBlock1d(r, theta=theta, overlapping=False)
    x = torch.ones(N_MC, d, dtype=torch.float64)
    out = layer(x)
    values = set(np.unique(out.numpy()).tolist())
    assert values <= {0.0, 1.0 / theta}
    kept = (out > 0).numpy().reshape(N_MC, d // r, r)
    assert np.all(kept == kept[:, :, :1])  # every block all kept or all dropped
    # mean preserved: each unit is 1/theta with probability theta
    se = np.sqrt((1 - theta) / theta / N_MC)
    _within(out.mean(0).numpy(), np.ones(d), se)
    # blocks independent of each other, with keep probability theta
    w = kept[:, :, 0].astype(float)
    _within(w.mean(0), np.full(d // r, theta), np.sqrt(theta * (1 - theta) / N_MC))
    both = (w[:, 0] * w[:, 1]).mean()
    _within(both, theta**2, np.sqrt(theta**2 * (1 - theta**2) / N_MC))


def test_dropblock_independent_masks_per_sample_and_leading_dims():
    torch.manual_seed(1)
    theta = 0.5
    layer = sdt.DropBlock1d(2, theta=theta, overlapping=False)
    out = layer(torch.ones(N_MC // 4, 4, 2))  # leading dims are samples
    w = (out[..., 0] > 0).double().reshape(-1, 4).numpy()
    # consecutive samples (rows and leading index) are independent: P(both kept) = theta^2
    for u, v in [(w[:-1, 0], w[1:, 0]), (w[:, 0], w[:, 1])]:
        _within((u * v).mean(), theta**2, np.sqrt(theta**2 * (1 - theta**2) / len(u)))


def test_dropblock_eval_identity_and_gradient_is_mask():
    torch.manual_seed(2)
    layer = sdt.DropBlock1d(3, theta=0.6, overlapping=False)
    x = torch.randn(7, 9, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    out.sum().backward()
    # d out / d x is the scaled mask itself
    assert torch.allclose(x.grad, out.detach() / x.detach())
    layer.eval()
    assert layer(x) is x
    assert sdt.DropBlock1d(3, theta=1.0, overlapping=False)(x) is x


def test_dropblock_device_dtype_and_errors():
    layer = sdt.DropBlock1d(2, theta=0.5, overlapping=False)
    out = layer(torch.ones(3, 4, dtype=torch.float32))
    assert out.dtype == torch.float32
    with pytest.raises(ValueError, match="block_size"):
        layer(torch.ones(3, 5))
    with pytest.raises(ValueError, match="theta"):
        sdt.DropBlock1d(2, theta=0.0, overlapping=False)
    with pytest.raises(ValueError, match="block_size"):
        sdt.DropBlock1d(0, theta=0.5, overlapping=False)
    with pytest.raises(TypeError):
        sdt.DropBlock1d(2, theta="a", overlapping=False)


# ---------------------------------------------------------------- OverlappingDropBlock1d
def _enumerate_overlapping(d, r, gamma):
    """Exact distribution of the 0/1 keep pattern by enumeration of all seed patterns."""
    n_seeds = d - r + 1
    patterns = {}
    for seeds in itertools.product([0, 1], repeat=n_seeds):
        p = np.prod([gamma if s else 1 - gamma for s in seeds])
        keep = np.ones(d)
        for j, s in enumerate(seeds):
            if s:
                keep[j : j + r] = 0
        key = tuple(keep.astype(int))
        patterns[key] = patterns.get(key, 0.0) + p
    return patterns


def test_overlapping_keep_probabilities_edges_hand_derived():
    layer = sdt.OverlappingDropBlock1d(3, gamma=0.2)
    # |W(i)| for d = 7, r = 3 counted by hand: edges are covered by fewer seeds
    assert np.allclose(layer.keep_probabilities(7), 0.8 ** np.array([1, 2, 3, 3, 3, 2, 1]))
    assert np.isclose(sdt.OverlappingDropBlock1d(3, theta=0.5).gamma, 1 - 0.5 ** (1 / 3))
    with pytest.raises(ValueError):
        sdt.OverlappingDropBlock1d(3)
    with pytest.raises(ValueError):
        sdt.OverlappingDropBlock1d(3, gamma=0.1, theta=0.5)
    with pytest.raises(ValueError):
        sdt.OverlappingDropBlock1d(3, gamma=1.0)


def test_overlapping_matches_enumerated_distribution():
    torch.manual_seed(3)
    d, r, gamma = 6, 3, 0.25
    exact = _enumerate_overlapping(d, r, gamma)
    mu = sum(p * np.array(k) for k, p in exact.items())
    second = sum(p * np.outer(k, k) for k, p in exact.items())
    layer = sdt.OverlappingDropBlock1d(r, gamma=gamma)
    out = layer(torch.ones(N_MC, d, dtype=torch.float64)).numpy()
    keep = (out > 0).astype(int)
    # scaled by the exact keep probability of each unit (edge units included)
    assert np.allclose(out[keep == 1], np.broadcast_to(1 / mu, out.shape)[keep == 1])
    # only patterns with positive probability occur, and every maximal dropped run has length >= r
    seen = {tuple(row) for row in np.unique(keep, axis=0)}
    assert seen <= set(exact)
    # mean preserved unit by unit, and the pair keep probabilities are the enumerated ones
    _within(out.mean(0), np.ones(d), np.sqrt((1 - mu) / mu / N_MC))
    emp = keep.T @ keep / N_MC
    _within(emp, second, np.sqrt(second * (1 - second) / N_MC))
    # samples are independent: the keep indicators of consecutive rows are uncorrelated
    both = (keep[:-1, 2] * keep[1:, 2]).mean()
    _within(both, mu[2] ** 2, np.sqrt(mu[2] ** 2 * (1 - mu[2] ** 2) / (N_MC - 1)))
    # frequencies of whole patterns
    for key, p in exact.items():
        freq = np.mean(np.all(keep == np.array(key), axis=1))
        _within(freq, p, np.sqrt(p * (1 - p) / N_MC))


def test_overlapping_eval_identity_and_errors():
    layer = sdt.OverlappingDropBlock1d(4, theta=0.5)
    x = torch.randn(2, 6)
    layer.eval()
    assert layer(x) is x
    layer.train()
    with pytest.raises(ValueError, match="block_size"):
        layer(torch.ones(2, 3))
    assert sdt.OverlappingDropBlock1d(2, gamma=0.0)(x) is x


# ---------------------------------------------------------------- DropConnectLinear
def test_dropconnect_linear_mean_and_variance():
    torch.manual_seed(4)
    theta = 0.4
    layer = sdt.DropConnectLinear(5, 3, theta=theta, dtype=torch.float64)
    x = torch.randn(5, dtype=torch.float64)
    out = layer(x.expand(N_MC, 5)).detach().numpy()
    W = layer.weight.detach().numpy()
    bias = layer.bias.detach().numpy()
    mean = W @ x.numpy() + bias
    # independent weights: Var(out_o) = beta sum_j W_oj^2 x_j^2
    var = (1 - theta) / theta * (W**2 @ x.numpy() ** 2)
    _within(out.mean(0), mean, np.sqrt(var / N_MC))
    _within(out.var(0), var, var * np.sqrt(2.0 / N_MC) * 2)
    # per-sample masks: identical inputs give different outputs
    assert np.unique(out[:50], axis=0).shape[0] > 40


def test_dropconnect_linear_shared_mask_eval_and_shapes():
    torch.manual_seed(5)
    layer = sdt.DropConnectLinear(4, 2, theta=0.5, bias=False, per_sample=False)
    x = torch.randn(4)
    out = layer(x.expand(10, 4))
    assert torch.allclose(out, out[:1].expand(10, 2))
    layer.eval()
    assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight))
    layer2 = sdt.DropConnectLinear(4, 2, theta=0.5)
    assert layer2(torch.randn(3, 5, 4)).shape == (3, 5, 2)
    with pytest.raises(ValueError, match="theta"):
        sdt.DropConnectLinear(4, 2, theta=1.5)


def test_import_structdrop_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, structdrop; assert 'torch' not in sys.modules and 'structdrop.torch' not "
        "in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# ---------------------------------------------------------------- low-precision inputs
# Bernoulli(theta) keeps scaled by exact powers of two, so every output value is exact in
# bfloat16/float16 and any bias comes from the draws. n = 2**25 outputs: the standard error of the
# mean output is sqrt((1/p - 1) / n) <= 1.8e-4 at keep probability p >= 1/2; a bfloat16 uniform
# gave a bias of 1.8e-3, 10 standard errors.
N_LOW = 2**25


def _mean_within(out, keep, count):
    """|mean - 1| <= 5 standard errors for i.i.d. outputs of mean 1 with keep probability keep."""
    se = math.sqrt((1.0 / keep - 1.0) / count)
    mean = float(out.detach().double().mean())
    assert abs(mean - 1.0) <= 5.0 * se, (mean, se)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_layers_unbiased_in_half_precision(dtype):
    dtype = getattr(torch, dtype)
    torch.manual_seed(11)
    x = torch.ones(N_LOW // 64, 64, dtype=dtype)
    _mean_within(sdt.DropBlock1d(1, theta=0.5, overlapping=False)(x), 0.5, N_LOW)
    _mean_within(sdt.DropBlock1d(4, theta=0.5, overlapping=False)(x), 0.5, N_LOW // 4)
    # gamma = 1/2, r = 2: keep 1/2 at the edges, 1/4 inside (scales 2 and 4, exact); the units are
    # dependent through shared seeds, so only the 2 edge units per row are taken (independent).
    out = sdt.OverlappingDropBlock1d(2, gamma=0.5)(torch.ones(N_LOW // 2, 3, dtype=dtype))
    _mean_within(out[:, [0, 2]], 0.5, N_LOW)
    layer = sdt.DropConnectLinear(16, 4, theta=0.5, bias=False, dtype=dtype)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    out = layer(torch.ones(N_LOW // 64, 16, dtype=dtype)) / 16  # a mean of 16 keeps per output
    _mean_within(out, 0.5, N_LOW)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_seeded_draws_in_float32_and_float64_are_torch_rand_in_that_dtype(dtype):
    """The streams of full-precision inputs: torch.rand in the input's dtype, seed for seed."""
    x = torch.randn(5, 12, dtype=dtype)
    torch.manual_seed(3)
    out = sdt.DropBlock1d(3, theta=0.6, overlapping=False)(x)
    torch.manual_seed(3)
    keep = (torch.rand(5, 4, 1, dtype=dtype) < 0.6).expand(5, 4, 3).reshape(5, 12)
    torch.testing.assert_close(out, x * keep.to(dtype) * (1.0 / 0.6), rtol=0, atol=0)
    torch.manual_seed(4)
    out = sdt.OverlappingDropBlock1d(3, gamma=0.2)(x)
    torch.manual_seed(4)
    seeds = torch.rand(5, 1, 10, dtype=dtype) < 0.2
    assert torch.equal(
        out == 0,
        torch.nn.functional.max_pool1d(
            torch.nn.functional.pad(seeds.to(dtype), (2, 2)), 3, 1
        ).reshape(5, 12)
        > 0,
    )
    layer = sdt.DropConnectLinear(12, 2, theta=0.7, dtype=dtype)
    torch.manual_seed(5)
    out = layer(x)
    torch.manual_seed(5)
    mask = (torch.rand(5, 2, 12, dtype=dtype) < 0.7).to(dtype)
    expected = (
        torch.bmm(layer.weight * mask, x.unsqueeze(-1)).squeeze(-1) * (1.0 / 0.7) + layer.bias
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=0)

"""The conv DropBlock regulariser for a linear readout against enumeration of every mask of every
channel, Monte Carlo through the layer's own forward, and the independent 1-D formulas."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")
from _dropblock_oracle import overlapping_law, tile_law  # noqa: E402


def _law(shape, block, p, kw):
    b = tuple(block) if isinstance(block, tuple) else (block,) * len(shape)
    if kw.get("overlapping", True):
        return overlapping_law(shape, b, kw.get("seeds", "full"), p)
    return tile_law(shape, b, p, kw.get("random_offset", False))


def _enumerated_objective(Y, W, c, F, keep, prob, shared):
    """E over the masks of sum_n ||y_n - W vec(z_n / mu * f_n) - c||^2, masks independent per sample
    (and per channel unless shared), by brute force over all joint channel patterns."""
    n_batch, channels = F.shape[:2]
    mu = prob @ keep
    scaled = keep / mu  # patterns x U
    total = 0.0
    for n in range(n_batch):
        f = F[n].reshape(channels, -1)
        combos = (
            [(i,) * channels for i in range(len(prob))]
            if shared
            else itertools.product(range(len(prob)), repeat=channels)
        )
        for combo in combos:
            pr = prob[combo[0]] if shared else np.prod([prob[i] for i in combo])
            masked = np.concatenate([scaled[i] * f[ch] for ch, i in enumerate(combo)])
            total += pr * np.sum((Y[n] - W @ masked - c) ** 2)
    return total


CASES = [
    # (map, block, p, layer kwargs, channels)
    ((3, 3), 2, 0.3, dict(seeds="valid"), 2),
    ((2, 2), (1, 2), 0.25, dict(), 2),
    ((2, 2), 3, 0.4, dict(), 1),  # block larger than the map
    ((2, 3), 2, 0.35, dict(share_channels=True), 3),
    ((3, 4), 2, 0.3, dict(overlapping=False), 2),
    ((2, 3), (2, 2), 0.3, dict(overlapping=False, random_offset=True), 1),
    ((1, 2, 2), (1, 2, 2), 0.3, dict(), 1),  # 3-D
    ((2, 2, 2), 2, 0.3, dict(seeds="valid", share_channels=True), 2),
]


@pytest.mark.parametrize("shape,block,p,kw,channels", CASES)
def test_objective_equals_enumeration(shape, block, p, kw, channels):
    rng = np.random.default_rng(20)
    n_batch, a = 2, 2
    d = channels * int(np.prod(shape))
    F = rng.standard_normal((n_batch, channels) + shape)
    W, c, Y = rng.standard_normal((a, d)), rng.standard_normal(a), rng.standard_normal((n_batch, a))
    keep, prob = _law(shape, block, p, kw)
    exact = _enumerated_objective(Y, W, c, F, keep, prob, kw.get("share_channels", False))
    cls = sdt.DropBlock2d if len(shape) == 2 else sdt.DropBlock3d
    layer = cls(block, p=p, **kw)
    t = {k: torch.as_tensor(v) for k, v in dict(Y=Y, W=W, c=c, F=F).items()}
    got = sdt.dropblock_conv_objective(layer, t["F"], t["Y"], t["W"], t["c"])
    assert np.isclose(float(got), exact, rtol=1e-11)
    fit = np.sum((Y - F.reshape(n_batch, -1) @ W.T - c) ** 2)
    assert np.isclose(
        float(sdt.dropblock_conv_regularizer(layer, t["W"], t["F"])), exact - fit, rtol=1e-10
    )


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(seeds="valid"),
        dict(share_channels=True),
        dict(overlapping=False, random_offset=True),
    ],
)
def test_objective_against_monte_carlo_through_the_layer(kw):
    """Mean sampled loss of the real forward (each draw: a batch of masks) within 5 standard
    errors."""
    torch.manual_seed(21)
    n_batch, channels, shape, a = 4, 3, (6, 7), 3
    F = torch.randn(n_batch, channels, *shape, dtype=torch.float64)
    W = torch.randn(a, channels * 42, dtype=torch.float64) / 6
    Y = torch.randn(n_batch, a, dtype=torch.float64)
    layer = sdt.DropBlock2d(3, p=0.3, **kw)
    draws = 3000
    masked = layer(F.repeat(draws, 1, 1, 1))  # draws x N independent samples
    losses = (
        (Y.repeat(draws, 1) - masked.flatten(1) @ W.T)
        .square()
        .sum(1)
        .reshape(draws, n_batch)
        .sum(1)
    )
    exact = float(sdt.dropblock_conv_objective(layer, F, Y, W))
    se = float(losses.std()) / np.sqrt(draws)
    assert abs(float(losses.mean()) - exact) <= 5 * se, (float(losses.mean()), exact, se)
    assert (
        float(sdt.dropblock_conv_regularizer(layer, W, F)) > 10 * se
    )  # the test can see the regulariser


def test_reduces_to_the_1d_formulas():
    """A 1 x d map with block (1, r) is the 1-D law: valid seeds = OverlappingDropBlock1d,
    tiles = DropBlock1d."""
    rng = np.random.default_rng(22)
    d, r, a, n = 9, 3, 2, 5
    U = torch.as_tensor(rng.standard_normal((a, d)))
    G = torch.as_tensor(rng.standard_normal((d, n)))
    feats = G.T.reshape(n, 1, 1, d)
    over = sdt.DropBlock2d((1, r), p=0.4, seeds="valid")
    gamma = over.gamma()
    expected = sdt.overlapping_dropblock_regularizer(U, G, r, gamma=gamma)
    assert np.isclose(
        float(sdt.dropblock_conv_regularizer(over, U, feats)), float(expected), rtol=1e-12
    )
    tiles = sdt.DropBlock2d((1, r), p=0.4, overlapping=False)
    expected = sdt.dropblock_regularizer(U, G, 0.6, r)
    assert np.isclose(
        float(sdt.dropblock_conv_regularizer(tiles, U, feats)), float(expected), rtol=1e-12
    )


def test_gradients():
    rng = np.random.default_rng(23)
    layer = sdt.DropBlock2d(2, p=0.3, seeds="valid")
    args = [
        torch.as_tensor(rng.standard_normal(s)).requires_grad_()
        for s in ((3, 2), (2, 12), (3, 1, 3, 4))
    ]
    assert torch.autograd.gradcheck(
        lambda Y, W, F: sdt.dropblock_conv_objective(layer, F, Y, W), args
    )
    cube = sdt.DropBlock3d((2, 3, 2), p=0.25)
    args = [
        torch.as_tensor(rng.standard_normal(s)).requires_grad_()
        for s in ((2, 2 * 36), (2, 2, 3, 4, 3))
    ]
    assert torch.autograd.gradcheck(lambda W, F: sdt.dropblock_conv_regularizer(cube, W, F), args)
    shared = sdt.DropBlock2d(3, p=0.2, share_channels=True)
    args = [
        torch.as_tensor(rng.standard_normal(s)).requires_grad_() for s in ((2, 24), (2, 2, 3, 4))
    ]
    assert torch.autograd.gradcheck(lambda W, F: sdt.dropblock_conv_regularizer(shared, W, F), args)


def test_follows_the_schedule_and_errors():
    layer = sdt.DropBlock2d(3, p=0.5, warmup_steps=4)
    W, F = torch.randn(2, 2 * 25), torch.randn(3, 2, 5, 5)
    assert float(sdt.dropblock_conv_regularizer(layer, W, F)) == 0.0  # p = 0 before the warm-up
    layer.step(2)
    half = float(sdt.dropblock_conv_regularizer(layer, W, F))
    layer.step(2)
    assert 0 < half < float(sdt.dropblock_conv_regularizer(layer, W, F))
    with pytest.raises(TypeError, match="DropBlock2d or DropBlock3d"):
        sdt.dropblock_conv_regularizer(sdt.DropBlock1d(2, p=0.5, overlapping=False), W, F)
    with pytest.raises(ValueError, match="features"):
        sdt.dropblock_conv_regularizer(layer, W, F[0])
    with pytest.raises(ValueError, match="weight"):
        sdt.dropblock_conv_regularizer(layer, torch.randn(2, 49), F)
    with pytest.raises(TypeError, match="dtype"):
        sdt.dropblock_conv_regularizer(layer, W.double(), F)
    with pytest.raises(ValueError, match="targets"):
        sdt.dropblock_conv_objective(layer, F, torch.randn(3, 3), W)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kw", [dict(), dict(share_channels=True), dict(seeds="valid")])
def test_cuda_matches_cpu(kw):
    torch.manual_seed(24)
    layer = sdt.DropBlock3d((2, 3, 2), p=0.3, **kw)
    F = torch.randn(3, 2, 3, 4, 5, dtype=torch.float64)
    W = torch.randn(2, 2 * 60, dtype=torch.float64)
    values, grads = [], []
    for device in ("cpu", "cuda"):
        f, w = F.to(device).requires_grad_(), W.to(device).requires_grad_()
        value = sdt.dropblock_conv_regularizer(layer, w, f)
        value.backward()
        values.append(float(value))
        grads.append((f.grad.cpu(), w.grad.cpu()))
    assert np.isclose(values[0], values[1], rtol=1e-12)
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)

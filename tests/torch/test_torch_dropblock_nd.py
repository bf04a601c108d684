"""DropBlock2d/3d: exact moments against enumeration of all seed/tile patterns, unbiasedness and the
pattern law by Monte Carlo (standard-error tolerances), layouts, generators and bad input."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")
from _dropblock_oracle import moments, overlapping_law, tile_law  # noqa: E402


def _layer(shape, block, p, **kw):
    cls = sdt.DropBlock2d if len(shape) == 2 else sdt.DropBlock3d
    return cls(block, p=p, **kw)


def _block_tuple(block, k):
    return tuple(block) if isinstance(block, tuple) else (block,) * k


# (spatial shape, block, p, layer kwargs); blocks larger than the map and even blocks included
ENUMERATED = [
    ((3, 3), 2, 0.3, dict()),
    ((2, 4), (2, 3), 0.2, dict()),
    ((2, 2), 3, 0.25, dict()),  # block larger than the map
    ((3, 4), 2, 0.4, dict(seeds="valid")),  # even block, border units dropped less
    ((4, 4), (3, 2), 0.3, dict(seeds="valid")),
    ((1, 2, 3), (1, 2, 2), 0.3, dict()),  # 3-D
    ((2, 2, 3), (2, 1, 2), 0.5, dict(seeds="valid")),
    ((3, 5), 2, 0.35, dict(overlapping=False)),
    ((3, 4), (2, 3), 0.3, dict(overlapping=False, random_offset=True)),
    ((2, 2, 3), 2, 0.3, dict(overlapping=False, random_offset=True)),
    ((2, 3), 4, 0.3, dict(overlapping=False)),  # one partial tile
]


def _law(shape, block, p, kw):
    b = _block_tuple(block, len(shape))
    if kw.get("overlapping", True):
        return overlapping_law(shape, b, kw.get("seeds", "full"), p)
    return tile_law(shape, b, p, kw.get("random_offset", False))


@pytest.mark.parametrize("shape,block,p,kw", ENUMERATED)
def test_mask_moments_equal_enumeration(shape, block, p, kw):
    keep, prob = _law(shape, block, p, kw)
    assert np.isclose(prob.sum(), 1.0)
    mu, cov = moments(keep, prob)
    got = _layer(shape, block, p, **kw).mask_moments(*shape)
    assert got.keep_probability.shape == shape
    np.testing.assert_allclose(got.keep_probability.reshape(-1).numpy(), mu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.covariance.numpy(), cov, rtol=0, atol=1e-12)
    cbar = cov / np.outer(mu, mu)
    np.testing.assert_allclose(got.characteristic_matrix.numpy(), cbar, rtol=1e-10, atol=1e-12)


def test_interior_units_dropped_with_exactly_p():
    # full seeds: every unit; valid seeds: the units covered by prod(b) seeds (hand-picked interior)
    mu = sdt.DropBlock2d(3, p=0.15).mask_moments(5, 4).keep_probability
    assert torch.allclose(mu, torch.full_like(mu, 0.85), rtol=0, atol=1e-14)
    valid = sdt.DropBlock2d(3, p=0.15, seeds="valid").mask_moments(7, 7).keep_probability
    assert torch.allclose(
        valid[2:5, 2:5], torch.full((3, 3), 0.85, dtype=torch.float64), atol=1e-14
    )
    assert valid[0, 0] > 0.98  # the corner is covered by one seed only
    assert np.isclose(float(valid[0, 0]), 0.85 ** (1 / 9))


SAMPLED = [(*case, sampler) for case in ENUMERATED[:6] for sampler in ("dense", "sparse")] + [
    (*ENUMERATED[7], "dense"),
    (*ENUMERATED[8], "dense"),
]  # tiles have one sampler


@pytest.mark.parametrize("shape,block,p,kw,sampler", SAMPLED)
def test_sampled_patterns_follow_the_enumerated_law(shape, block, p, kw, sampler):
    """Frequencies of whole keep patterns and unit means of the output, within 5 standard errors."""
    keep, prob = _law(shape, block, p, kw)
    mu, _ = moments(keep, prob)
    gen = torch.Generator().manual_seed(7)
    opts = dict(kw, generator=gen)
    if kw.get("overlapping", True):
        opts["sampler"] = sampler
    layer = _layer(shape, block, p, **opts)
    n = 6000
    x = torch.ones((n // 3, 3) + shape, dtype=torch.float64)
    out = layer(x).reshape(n, -1).numpy()
    kept = (out > 0).astype(float)
    # each kept unit carries exactly 1/mu_u, the enumerated keep probability
    scale = np.broadcast_to(1.0 / mu, out.shape)
    np.testing.assert_allclose(out[kept == 1], scale[kept == 1], rtol=1e-12)
    # unbiased unit by unit: E[out_u] = 1
    se = np.sqrt((1 - mu) / mu / n)
    assert np.all(np.abs(out.mean(0) - 1.0) <= 5 * se + 1e-12)
    # the law of whole patterns
    law = {}
    for row, pr in zip(map(tuple, keep), prob):
        law[row] = law.get(row, 0.0) + pr
    seen, counts = np.unique(kept, axis=0, return_counts=True)
    for row in map(tuple, seen):
        assert row in law, f"impossible pattern {row}"
    for row, pr in law.items():
        freq = counts[np.all(seen == np.array(row), axis=1)].sum() / n
        assert abs(freq - pr) <= 5 * math.sqrt(pr * (1 - pr) / n) + 1.0 / n, (row, freq, pr)


# many (map, block, p) settings: 2-D and 3-D, large and even blocks, both seed regions, tiles
MC_SETTINGS = [
    ((7, 7), 3, 0.1, dict()),
    ((7, 7), 5, 0.3, dict()),
    ((5, 6), (4, 2), 0.2, dict()),
    ((4, 4), 7, 0.5, dict()),  # block larger than the map
    ((6, 6), 4, 0.25, dict(seeds="valid")),
    ((8, 5), (3, 5), 0.4, dict(seeds="valid")),
    ((6, 7), 3, 0.3, dict(share_channels=True)),
    ((9, 9), 2, 0.05, dict(sampler="dense")),
    ((6, 5), 3, 0.6, dict(sampler="sparse")),
    ((7, 5), 3, 0.3, dict(overlapping=False)),
    ((7, 5), (2, 4), 0.3, dict(overlapping=False, random_offset=True)),
    ((3, 4, 5), 2, 0.3, dict()),
    ((3, 3, 4), (3, 2, 5), 0.2, dict(seeds="full", sampler="sparse")),
    ((4, 3, 5), 2, 0.4, dict(seeds="valid")),
    ((3, 4, 4), 3, 0.3, dict(overlapping=False, random_offset=True)),
]


@pytest.mark.parametrize("shape,block,p,kw", MC_SETTINGS)
def test_unbiased_unit_by_unit(shape, block, p, kw):
    torch.manual_seed(11)
    layer = _layer(shape, block, p, **kw)
    mu = layer.mask_moments(*shape).keep_probability.numpy()
    n_samples, channels = 1500, 2
    out = layer(torch.ones((n_samples, channels) + shape, dtype=torch.float64)).numpy()
    draws = n_samples if kw.get("share_channels") else n_samples * channels
    mean = out.mean((0, 1))
    se = np.sqrt((1 - mu) / mu / draws)
    assert np.all(np.abs(mean - 1.0) <= 5 * se + 1e-12), (mean, se)
    if kw.get("seeds", "full") == "full" or not kw.get("overlapping", True):
        kept = (out > 0).mean((0, 1))  # every unit is dropped with probability p
        assert np.all(np.abs(kept - (1 - p)) <= 5 * math.sqrt(p * (1 - p) / draws))


def test_mask_moments_against_sampling_covariance():
    torch.manual_seed(12)
    layer = sdt.DropBlock2d((3, 2), p=0.3, seeds="valid")
    m = layer.mask_moments(4, 5)
    n = 20000
    kept = (layer(torch.ones(n, 1, 4, 5, dtype=torch.float64)) > 0).reshape(n, -1).double().numpy()
    pair = kept.T @ kept / n
    exact = (
        m.covariance + torch.outer(m.keep_probability.reshape(-1), m.keep_probability.reshape(-1))
    ).numpy()
    assert np.all(np.abs(pair - exact) <= 5 * np.sqrt(exact * (1 - exact) / n) + 1e-12)


def test_share_channels_and_independent_channels():
    torch.manual_seed(13)
    x = torch.ones(4000, 3, 6, 6)
    for sampler in ("dense", "sparse"):
        shared = sdt.DropBlock2d(3, p=0.4, share_channels=True, sampler=sampler)(x)
        assert torch.equal(shared[:, 0], shared[:, 1]) and torch.equal(shared[:, 0], shared[:, 2])
        own = sdt.DropBlock2d(3, p=0.4, sampler=sampler)(x)
        a, b = (own[:, 0, 2, 3] > 0).double(), (own[:, 1, 2, 3] > 0).double()
        # independent channels: P(both kept) = 0.6^2 for one unit
        assert abs((a * b).mean().item() - 0.36) <= 5 * math.sqrt(0.36 * 0.64 / a.numel())


def test_eval_identity_gradient_dtype_and_layouts():
    layer = sdt.DropBlock2d(3, theta=0.7)
    assert np.isclose(layer.p, 0.3)
    x = torch.randn(2, 3, 6, 5, requires_grad=True)
    out = layer(x)
    assert out.dtype == x.dtype and out.shape == x.shape
    out.sum().backward()
    assert torch.allclose(x.grad * x.detach(), out.detach())  # d out / d x is the scaled mask
    layer.eval()
    assert layer(x) is x
    assert sdt.DropBlock2d(3, p=0.0)(x) is x
    for cls, fmt, shape in [
        (sdt.DropBlock2d, torch.channels_last, (2, 4, 7, 6)),
        (sdt.DropBlock3d, torch.channels_last_3d, (2, 4, 3, 5, 4)),
    ]:
        for kw in [
            dict(sampler="dense"),
            dict(sampler="sparse"),
            dict(seeds="valid", block_size=2),
            dict(seeds="valid", block_size=2, sampler="dense"),
            dict(overlapping=False),
            dict(share_channels=True),
        ]:
            kw = dict(kw)
            block = kw.pop("block_size", 3)
            xc = torch.randn(shape).to(memory_format=fmt)
            yc = cls(block, p=0.3, **kw)(xc)
            assert yc.is_contiguous(memory_format=fmt), (cls.__name__, kw)
    half = sdt.DropBlock2d(3, p=0.3)(torch.ones(2, 2, 5, 5, dtype=torch.bfloat16))
    assert half.dtype == torch.bfloat16


def test_generator_reproducible():
    x = torch.ones(4, 2, 9, 9)
    for sampler in ("dense", "sparse"):
        outs = [
            sdt.DropBlock2d(3, p=0.3, sampler=sampler, generator=torch.Generator().manual_seed(s))(
                x
            )
            for s in (5, 5, 6)
        ]
        assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])


def test_bad_input():
    with pytest.raises(ValueError, match="exactly one"):
        sdt.DropBlock2d(3)
    with pytest.raises(ValueError, match="exactly one"):
        sdt.DropBlock2d(3, p=0.1, theta=0.9)
    for p in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="p must lie"):
            sdt.DropBlock2d(3, p=p)
    with pytest.raises(ValueError, match="theta"):
        sdt.DropBlock2d(3, theta=0.0)
    with pytest.raises(TypeError):
        sdt.DropBlock2d(3, p="0.1")
    for block in (0, -2, (3, 0)):
        with pytest.raises(ValueError, match="block_size"):
            sdt.DropBlock2d(block, p=0.1)
    with pytest.raises(ValueError, match="tuple of 3"):
        sdt.DropBlock3d((2, 2), p=0.1)
    with pytest.raises(TypeError, match="block_size"):
        sdt.DropBlock2d(2.5, p=0.1)
    with pytest.raises(ValueError, match="seeds"):
        sdt.DropBlock2d(3, p=0.1, seeds="inside")
    with pytest.raises(ValueError, match="random_offset"):
        sdt.DropBlock2d(3, p=0.1, random_offset=True)
    with pytest.raises(ValueError, match="sampler"):
        sdt.DropBlock2d(3, p=0.1, sampler="fast")
    with pytest.raises(ValueError, match="warmup"):
        sdt.DropBlock2d(3, p=0.1, warmup="exp")
    layer = sdt.DropBlock2d(3, p=0.1)
    with pytest.raises(ValueError, match="4-D"):
        layer(torch.ones(2, 5, 5))
    with pytest.raises(ValueError, match="5-D"):
        sdt.DropBlock3d(3, p=0.1)(torch.ones(2, 2, 5, 5))
    with pytest.raises(TypeError, match="floating"):
        layer(torch.ones(2, 2, 5, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="valid"):
        sdt.DropBlock2d(4, p=0.1, seeds="valid")(torch.ones(1, 1, 3, 6))
    with pytest.raises(ValueError, match="2 spatial sizes"):
        layer.mask_moments(4, 4, 4)


def test_repr_and_exports():
    text = repr(sdt.DropBlock3d((1, 2, 3), p=0.2, warmup_steps=10))
    assert "block_size=(1, 2, 3)" in text and "warmup_steps=10" in text
    assert isinstance(sdt.DropBlock2d(2, p=0.1).mask_moments(2, 2), sdt.MaskMoments)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(seeds="valid"),
        dict(overlapping=False, random_offset=True),
        dict(share_channels=True),
    ],
)
def test_cuda_masks_on_device_unbiased_channels_last(kw):
    torch.manual_seed(14)
    layer = sdt.DropBlock2d(3, p=0.3, **kw)
    x = torch.ones(2000, 2, 7, 6, device="cuda").to(memory_format=torch.channels_last)
    out = layer(x)
    assert out.device.type == "cuda" and out.is_contiguous(memory_format=torch.channels_last)
    mu = layer.mask_moments(7, 6).keep_probability.numpy()
    draws = 2000 if kw.get("share_channels") else 4000
    mean = out.double().mean((0, 1)).cpu().numpy()
    assert np.all(np.abs(mean - 1) <= 5 * np.sqrt((1 - mu) / mu / draws))
    gen = torch.Generator(device="cuda").manual_seed(3)
    a = sdt.DropBlock2d(3, p=0.3, generator=gen, **kw)(x)
    gen.manual_seed(3)
    b = sdt.DropBlock2d(3, p=0.3, generator=gen, **kw)(x)
    assert torch.equal(a, b)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_seed_probability_refuses_a_rate_outside_zero_one_by_name(rate):
    with pytest.raises(ValueError, match=r"p must be a drop rate in \[0, 1\)"):
        sdt.DropBlock2d(3, p=0.2).gamma(rate)


def test_seed_probability_keeps_a_unit_with_probability_one_minus_p():
    # (1 - gamma)^(block area) = 1 - p: the overlapping law's seed rate, checked at both ends
    for block, p in ((3, 0.0), (3, 0.2), ((2, 5), 0.9)):
        layer = sdt.DropBlock2d(block, p=0.5)
        area = 9 if block == 3 else 10
        assert (1 - layer.gamma(p)) ** area == pytest.approx(1 - p, rel=1e-14, abs=0)

"""mask_statistics: the exact drop-rate maps against sampling the published torchvision/timm code
paths (re-typed here from their sources: bernoulli_ seeds, pad, max_pool2d), against the real
torchvision.ops.drop_block2d and timm drop_block_2d where they import, and against DropBlock2d.

timm from PyPI may not import beside the local torch (its other modules need torchvision and
more); its ``timm/layers/drop.py`` needs only torch, so STRUCTDROP_TIMM_DROP_PY may name that file
(e.g. unpacked from a timm >= 1.0.23 wheel) to sample the real code without importing timm.
"""

import importlib.util
import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")
F = torch.nn.functional


def _torchvision_mask(n, H, W, p, b):
    gamma = (p * H * W) / ((b**2) * ((H - b + 1) * (W - b + 1)))
    noise = torch.empty((n, 1, H - b + 1, W - b + 1), dtype=torch.float64).bernoulli_(gamma)
    noise = F.pad(noise, [b // 2] * 4, value=0)
    return 1 - F.max_pool2d(noise, stride=(1, 1), kernel_size=(b, b), padding=b // 2)


def _timm_mask(n, H, W, p, b):
    """timm >= 1.0.23 drop_block_2d (couple_channels=True), before the batch-wide rescaling."""
    kh, kw = min(b, H), min(b, W)
    gamma = p * H * W / (kh * kw) / ((H - kh + 1) * (W - kw + 1))
    seeds = torch.empty((n, 1, H, W), dtype=torch.float64).bernoulli_(gamma)
    mask = F.max_pool2d(seeds, kernel_size=(kh, kw), stride=1, padding=(kh // 2, kw // 2))
    if kh % 2 == 0 or kw % 2 == 0:
        mask = mask[..., (kh + 1) % 2 :, (kw + 1) % 2 :]
    return 1 - mask


def _real_timm_drop_block_2d():
    """timm's drop_block_2d (the current rule), imported or loaded from STRUCTDROP_TIMM_DROP_PY;
    None when neither is available."""
    try:
        from timm.layers import drop
    except Exception:  # not installed, or its other dependencies do not import here
        path = os.environ.get("STRUCTDROP_TIMM_DROP_PY")
        if not path:
            return None
        spec = importlib.util.spec_from_file_location("_timm_layers_drop", path)
        drop = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(drop)
        except ImportError as exc:  # timm <= 1.0.22's drop.py imports its package's .grid
            pytest.skip(f"{path} does not load alone ({exc}): not timm >= 1.0.23")
    fn = getattr(drop, "drop_block_2d", None)
    if fn is None or "couple_channels" not in fn.__code__.co_varnames:
        pytest.skip("this timm predates 1.0.23 (the rule mask_statistics follows)")
    return fn


def _real_torchvision_drop_block2d():
    try:
        from torchvision.ops import drop_block2d
    except Exception:  # not installed, or built against another torch
        return None
    return drop_block2d


SETTINGS = [
    ((7, 7), 3, 0.1),
    ((7, 7), 5, 0.1),
    ((6, 9), 3, 0.3),
    ((5, 5), 5, 0.05),
    ((8, 8), 4, 0.1),  # even block: timm crops it (torchvision fails)
    ((6, 9), 4, 0.05),
    ((5, 6), 7, 0.2),  # block larger than the map: timm clips it per axis
]


def _assert_sampled(stats, rule, keep, n):
    dropped = 1 - keep.double().mean(0).numpy()
    exact = stats.drop_rates[rule]
    se = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(dropped - exact) <= 5 * se + 1e-12), (rule, dropped, exact)


@pytest.mark.parametrize("shape,block,p", SETTINGS)
def test_exact_maps_match_sampled_published_rules(shape, block, p):
    torch.manual_seed(50)
    stats = sdt.mask_statistics(shape, block, p)
    n = 20000
    for rule, sample in (("torchvision", _torchvision_mask), ("timm", _timm_mask)):
        if rule in stats.failures:
            continue
        _assert_sampled(stats, rule, sample(n, *shape, p, block)[:, 0], n)


@pytest.mark.parametrize("shape,block,p", SETTINGS)
def test_exact_maps_match_the_real_code(shape, block, p):
    """The installed code itself: which units a batch of ones leaves nonzero."""
    timm_rule, torchvision_rule = _real_timm_drop_block_2d(), _real_torchvision_drop_block2d()
    if timm_rule is None and torchvision_rule is None:
        pytest.skip("neither timm's drop.py nor torchvision.ops imports here")
    torch.manual_seed(51)
    stats = sdt.mask_statistics(shape, block, p)
    n = 20000
    x = torch.ones((n, 1, *shape), dtype=torch.float64)
    if timm_rule is not None:
        _assert_sampled(stats, "timm", timm_rule(x, p, block)[:, 0] != 0, n)
    if torchvision_rule is not None and "torchvision" not in stats.failures:
        _assert_sampled(stats, "torchvision", torchvision_rule(x, p, block)[:, 0] != 0, n)


def test_the_documented_numbers_and_structdrop_rows():
    small = sdt.mask_statistics((7, 7), 3, 0.1)
    tv = small.drop_rates["torchvision"]
    assert math.isclose(tv[3, 3], 0.1798, abs_tol=5e-4) and math.isclose(
        tv[0, 0], 0.0218, abs_tol=5e-4
    )
    assert math.isclose(
        sdt.mask_statistics((7, 7), 5, 0.1).drop_rates["timm"].mean(), 0.31, abs_tol=0.005
    )
    assert np.allclose(small.drop_rates["structdrop"], 0.1, atol=1e-14)
    mm = sdt.DropBlock2d(3, p=0.1, seeds="valid").mask_moments(7, 7).drop_probability.numpy()
    assert np.allclose(small.drop_rates["structdrop-valid"], mm, atol=1e-14)
    assert np.allclose(small.gain("structdrop"), 1.0)
    gain = small.gain("torchvision")  # large-batch limit of the batch-wide renormalisation
    keep = 1 - tv
    assert np.allclose(gain, keep / keep.mean()) and gain[0, 0] > 1.05 and gain[3, 3] < 0.95
    rows = {r["rule"]: r for r in small.rows()}
    assert rows["torchvision drop_block2d"]["centre"] == pytest.approx(tv[3, 3])
    table = small.table()
    assert "| torchvision drop_block2d | 17.98 % | 2.18 % |" in table


def test_failing_settings_are_reported_not_computed():
    even = sdt.mask_statistics((8, 8), 4, 0.1)  # timm >= 1.0.23 crops even blocks
    assert set(even.failures) == {"torchvision"} and "even" in even.failures["torchvision"]
    large = sdt.mask_statistics((5, 6), 7, 0.2)  # timm clips the block to 5 x 6: one seed rate 0.2
    assert "structdrop-valid" not in large.drop_rates and np.allclose(
        large.drop_rates["structdrop"], 0.2
    )
    assert set(large.failures) == {"torchvision"} and "timm" in large.drop_rates
    assert large.drop_rates["timm"][2, 2] == pytest.approx(1 - 0.8**30)  # every seed covers it
    assert large.drop_rates["timm"][2, 3] == pytest.approx(1 - 0.8**25)  # not seed 0 of axis 1
    for H, W, b in itertools.product(range(1, 7), range(1, 7), range(1, 9)):  # timm always runs
        timm = sdt.mask_statistics((H, W), b, 0.5).drop_rates["timm"]
        assert timm.shape == (H, W) and np.all((timm > 0) & (timm <= 1))
    with pytest.raises(ValueError, match="p must lie"):
        sdt.mask_statistics((7, 7), 3, 1.0)
    with pytest.raises(ValueError, match="spatial_shape"):
        sdt.mask_statistics((7, 7, 7), 3, 0.1)
    with pytest.raises(ValueError, match="block_size"):
        sdt.mask_statistics((7, 7), 0, 0.1)


def test_figure():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = sdt.mask_statistics((7, 7), 3, 0.1).figure()
    assert isinstance(fig, Figure) and len(fig.axes) == 5  # four heat maps and the colour bar


@pytest.mark.slow
def test_structdrop_torch_does_not_import_matplotlib():
    code = "import sys, structdrop.torch; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

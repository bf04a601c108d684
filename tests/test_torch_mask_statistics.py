"""mask_statistics: the exact drop-rate maps against sampling the published torchvision/timm code
paths (re-typed here from their sources: bernoulli_ seeds, pad, max_pool2d), and
against DropBlock2d."""

import math
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


def _timm_fast_mask(n, H, W, p, b):
    cb = min(b, W, H)
    gamma = p * H * W / cb**2 / ((W - b + 1) * (H - b + 1))
    seeds = torch.empty((n, 1, H, W), dtype=torch.float64).bernoulli_(gamma)
    return 1 - F.max_pool2d(seeds, kernel_size=cb, stride=1, padding=cb // 2)


@pytest.mark.parametrize(
    "shape,block,p", [((7, 7), 3, 0.1), ((7, 7), 5, 0.1), ((6, 9), 3, 0.3), ((5, 5), 5, 0.05)]
)
def test_exact_maps_match_sampled_published_rules(shape, block, p):
    torch.manual_seed(50)
    stats = sdt.mask_statistics(shape, block, p)
    n = 20000
    for rule, sample in (("torchvision", _torchvision_mask), ("timm", _timm_fast_mask)):
        dropped = 1 - sample(n, *shape, p, block)[:, 0].mean(0).numpy()
        exact = stats.drop_rates[rule]
        se = np.sqrt(exact * (1 - exact) / n)
        assert np.all(np.abs(dropped - exact) <= 5 * se + 1e-12), rule


def test_the_numbers_quoted_in_the_issue_and_structdrop_rows():
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
    even = sdt.mask_statistics((8, 8), 4, 0.1)
    assert set(even.failures) == {"torchvision", "timm"} and "even" in even.failures["torchvision"]
    large = sdt.mask_statistics((5, 6), 7, 0.2)  # timm: (6 - 7 + 1)(5 - 7 + 1) = 0 in the seed rate
    assert "structdrop-valid" not in large.drop_rates and np.allclose(
        large.drop_rates["structdrop"], 0.2
    )
    assert (
        set(large.failures) == {"torchvision", "timm"}
        and "division by zero" in large.failures["timm"]
    )
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


def test_structdrop_torch_does_not_import_matplotlib():
    code = "import sys, structdrop.torch; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

"""The deep experiment (Section 5.2): its recorded objective is the exact deterministic objective
and never falls below the corrected Theorem 7 bound."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")
import structdrop  # noqa: E402
from structdrop.torch import deep  # noqa: E402

try:
    import sklearn  # noqa: F401

    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False
needs_sklearn = pytest.mark.skipif(
    not HAVE_SKLEARN, reason="the digits data ships with scikit-learn"
)


def _data():
    """The digits when scikit-learn is installed, else small synthetic class-pattern images."""
    if HAVE_SKLEARN:
        return "digits"
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 400)
    patterns = rng.standard_normal((10, 1, 8, 8))
    return (patterns[labels] + 0.5 * rng.standard_normal((400, 1, 8, 8)), labels)


def _quick_run(data, **options):
    """A few epochs on the CPU: 200 samples, 3 epochs, seed 1 unless ``options`` say otherwise."""
    settings = dict(n_train=200, epochs=3, batch_size=25, lr=3e-3, seed=1, device="cpu")
    settings.update(options)
    return sdt.deep_experiment(0.5, dataset=data, **settings)


def test_small_deep_experiment_respects_the_bound():
    data = _data()
    res = _quick_run(data, trunk="small_cnn")
    assert res.trunk == "small_cnn" and res.n_train == 200
    assert res.objective.shape == (4,) and res.train_loss.shape == (3,)
    # Theorem 7 bound for one-hot targets: computed independently here from the singular values of Y
    beta_bar = (5 / 80) * (1 - 0.5) / 0.5
    assert np.isclose(res.beta_bar, beta_bar)
    _, labels, _ = deep.load_dataset(data, n_train=200, seed=1)
    Y = np.eye(10)[labels.numpy()].T
    gm = structdrop.dropblock_global_min(Y, block_size=5, theta_bar=1 / (1 + beta_bar))
    assert np.isclose(res.lower_bound, gm.objective)
    assert res.lower_bound <= np.sum(Y**2)  # A = 0 is feasible
    assert np.all(res.objective >= res.lower_bound * (1 - 1e-12))
    # The bound within the final features' row space lies between: the final network is one of the
    # width-80 networks on those features (Corollary 8), and the row space restricts the minimum.
    assert res.lower_bound * (1 - 1e-9) <= res.feature_lower_bound <= res.objective[-1] * (1 + 1e-9)
    assert res.objective[-1] < res.objective[0]  # training decreases the exact objective
    assert res.relative_gap >= 0
    assert np.all(np.diff(res.singular_values) <= 1e-12) and res.singular_values.shape == (10,)
    np.testing.assert_allclose(
        res.theory_singular_values[: gm.singular_values.size], gm.singular_values[:10]
    )
    expected = (
        np.max(np.abs(res.singular_values - res.theory_singular_values)) / gm.singular_values[0]
    )
    assert np.isclose(res.singular_value_error, expected)


def test_recorded_objective_is_lemma1_of_the_features():
    # the formula the experiment records, checked against Monte Carlo over the layer's own masks
    torch.manual_seed(0)
    net = deep._Net(*deep.small_cnn(1), 10, 0.5).double()
    images, labels, _ = deep.load_dataset(_data(), n_train=40, seed=0)
    x = images.double()
    Y = torch.nn.functional.one_hot(labels, 10).double().T
    with torch.no_grad():
        G = net.features(x).T
        exact = float(
            sdt.feature_objective(sdt.SchemeSpec("dropblock", 0.5, 5), G, Y, net.last.weight)
        )
        net.train()
        head = torch.nn.Sequential(net.drop, net.last)
        samples = torch.stack([(Y.T - head(G.T)).square().sum() for _ in range(4000)]).numpy()
    assert abs(samples.mean() - exact) <= 5 * samples.std(ddof=1) / np.sqrt(samples.size)


@needs_sklearn
def test_digits_dataset():
    images, labels, classes = deep.load_dataset("digits")
    assert images.shape == (1797, 1, 8, 8) and classes == 10 and float(images.max()) <= 1.0


def test_dataset_arguments():
    with pytest.raises(ValueError, match="root"):
        deep.load_dataset("mnist")
    with pytest.raises(ValueError, match="dataset"):
        deep.load_dataset("imagenet")
    with pytest.raises(ValueError, match="n_train"):
        deep.load_dataset((np.zeros((5, 1, 4, 4)), np.arange(5)), n_train=6)
    with pytest.raises(ValueError, match="labels"):
        deep.load_dataset((np.zeros((5, 1, 4, 4)), np.linspace(0, 1, 5)))
    with pytest.raises(ValueError, match="images"):
        deep.load_dataset((np.zeros((5, 4, 4)), np.arange(5)))
    with pytest.raises(ValueError, match="trunk"):
        sdt.deep_experiment(trunk="vgg")
    with pytest.raises(ValueError, match="schedule"):
        sdt.deep_experiment(schedule="step")


def test_resnet50_trunk_shapes():
    pytest.importorskip("torchvision")
    trunk, features = deep.resnet50_small(1)
    assert trunk(torch.zeros(2, 1, 8, 8)).shape == (2, features)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_deep_experiment_on_cuda():
    res = sdt.deep_experiment(0.5, dataset=_data(), n_train=300, epochs=2, device="cuda")
    assert res.device.startswith("cuda")
    assert np.all(res.objective >= res.lower_bound * (1 - 1e-12))


def test_deep_experiment_accepts_any_module_as_trunk():
    data = _data()
    torch.manual_seed(3)
    trunk = torch.nn.Sequential(  # output N x 8 x 4 x 4: flattened to 128 features
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4)
    )
    res = _quick_run(data, n_train=150, epochs=2, seed=2, trunk=trunk)
    assert res.trunk == "custom" and res.objective.shape == (3,)
    assert next(trunk.parameters()).grad is not None  # trained in place
    _, labels, _ = deep.load_dataset(data, n_train=150, seed=2)
    Y = np.eye(10)[labels.numpy()].T
    gm = structdrop.dropblock_global_min(Y, block_size=5, theta_bar=res.theta_bar)
    assert np.isclose(res.lower_bound, gm.objective, rtol=1e-10)
    assert np.all(res.objective >= res.lower_bound * (1 - 1e-12))
    assert res.lower_bound <= res.feature_lower_bound <= res.objective[-1] * (1 + 1e-9)
    with pytest.raises(TypeError, match="nn.Module"):
        sdt.deep_experiment(0.5, dataset=data, epochs=0, trunk=3)
    with pytest.raises(ValueError, match="features"):
        sdt.deep_experiment(0.5, dataset=data, epochs=0, trunk=torch.nn.Flatten(0))

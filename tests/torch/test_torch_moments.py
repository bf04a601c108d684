"""structdrop.torch.feature_moments: the moments G G^T, Y G^T, ||Y||^2, N of a
feature extractor over a loader, batch by batch, and summed over torch.distributed processes.

The oracle is always the materialised computation: the features of ALL samples in one forward pass
(eval mode), turned into a NumPy float64 matrix G (d x N) and multiplied out with NumPy (and, as a
second route, structdrop.data_moments in C++). The distributed sum is checked with a real gloo
process group of two processes on the CPU.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import structdrop  # noqa: E402
from structdrop.torch import deep, feature_moments  # noqa: E402
from structdrop.torch.moments import CHECK_EVERY  # noqa: E402


def _close(moments, G, Y) -> None:
    """moments against NumPy's products of the materialised G (d x N) and Y (a x N)."""
    G = np.asarray(G, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    assert isinstance(moments, structdrop.DataMoments)
    assert moments.gram.dtype == np.float64 and moments.cross.dtype == np.float64
    assert moments.gram.shape == (G.shape[0],) * 2 and moments.cross.shape == (
        Y.shape[0],
        G.shape[0],
    )
    np.testing.assert_allclose(
        moments.gram, G @ G.T, rtol=1e-12, atol=1e-12 * np.abs(G @ G.T).max()
    )
    np.testing.assert_allclose(
        moments.cross, Y @ G.T, rtol=1e-12, atol=1e-12 * np.abs(Y @ G.T).max()
    )
    assert moments.y_sq_norm == pytest.approx(np.sum(Y**2), rel=1e-12)
    assert moments.n_samples == G.shape[1]
    assert np.array_equal(moments.gram, moments.gram.T)


def _net(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    # BatchNorm and Dropout make train and eval mode differ
    return nn.Sequential(
        nn.Linear(6, 9), nn.BatchNorm1d(9), nn.ReLU(), nn.Dropout(0.5), nn.Linear(9, 7)
    ).to(dtype)


def _data(N=50, a=3, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(N, 6, generator=gen, dtype=dtype), torch.randn(
        N, a, generator=gen, dtype=dtype
    )


def _materialised(net, X, batch_size=None):
    """All features as a NumPy float64 d x N matrix (float32 models: in the loader's batches, so
    that the float32 kernels, whose rounding may depend on the batch size, give the very same
    features)."""
    net.eval()
    with torch.no_grad():
        if batch_size is None:
            return net(X).to(torch.float64).cpu().numpy().T
        return (
            torch.cat([net(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])
            .double()
            .cpu()
            .numpy()
            .T
        )


@pytest.mark.parametrize(
    "batch_size", [1, 7, 16, 64]
)  # 50 samples: partial last batches, one batch
def test_module_moments_equal_the_materialised_products(batch_size):
    net = _net()
    X, Yt = _data()
    net.train()
    net[1].eval()  # a mixed state, which must come back exactly
    before = [m.training for m in net.modules()]
    moments = feature_moments(net, DataLoader(TensorDataset(X, Yt), batch_size=batch_size))
    assert [m.training for m in net.modules()] == before
    _close(moments, _materialised(net, X), Yt.numpy().T)
    # the C++ route from the same materialised data agrees too
    reference = structdrop.data_moments(_materialised(net, X), Yt.numpy().T)
    np.testing.assert_allclose(
        moments.gram, reference.gram, rtol=1e-12, atol=1e-12 * np.abs(reference.gram).max()
    )


def test_callable_with_class_indices_and_image_features():
    torch.manual_seed(2)
    conv = nn.Conv2d(1, 3, 3, padding=1).double()
    images = torch.randn(37, 1, 5, 5, dtype=torch.float64)
    labels = torch.randint(0, 4, (37,))
    loader = [
        (images[i : i + 10], labels[i : i + 10]) for i in range(0, 37, 10)
    ]  # a plain list of pairs
    moments = feature_moments(
        lambda x: torch.tanh(conv(x)), loader, num_classes=4
    )  # (batch, 3, 5, 5): d = 75
    with torch.no_grad():
        G = torch.tanh(conv(images)).reshape(37, -1).numpy().T
    Y = np.eye(4)[labels.numpy()].T  # one-hot, as in the deep experiment
    _close(moments, G, Y)
    assert moments.y_sq_norm == 37.0


def test_bound_method_puts_its_module_in_eval_mode():
    net = deep._Net(*deep.small_cnn(1), 10, 0.5).double()
    images, labels, _ = deep.load_dataset(
        (np.random.default_rng(3).standard_normal((30, 1, 6, 6)), np.arange(30) % 10)
    )
    net.train()
    moments = feature_moments(
        net.features,
        [(images[:20].double(), labels[:20]), (images[20:].double(), labels[20:])],
        num_classes=10,
    )
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    with torch.no_grad():
        G = net.features(images.double()).numpy().T
    _close(moments, G, np.eye(10)[labels.numpy()].T)


def test_float32_model_accumulates_in_float64():
    net = _net(torch.float32, seed=4)
    X, Yt = _data(N=203, dtype=torch.float32)
    X = X * 1e3  # large features: float32 sums of squares would lose digits
    moments = feature_moments(net, DataLoader(TensorDataset(X, Yt), batch_size=32))
    G = _materialised(net, X, 32)  # float32 features, as float64
    _close(moments, G, Yt.numpy().astype(np.float64).T)


def test_one_dimensional_float_targets_are_one_output():
    net = _net()
    X, Yt = _data(N=20, a=1)
    moments = feature_moments(net, DataLoader(TensorDataset(X, Yt[:, 0]), batch_size=6))
    assert moments.cross.shape == (1, 7)
    _close(moments, _materialised(net, X), Yt.numpy().T)


def test_explicit_device_and_progress(capsys):
    net = _net()
    X, Yt = _data(N=12)
    moments = feature_moments(
        net, DataLoader(TensorDataset(X, Yt), batch_size=5), device="cpu", progress=True
    )
    _close(moments, _materialised(net, X), Yt.numpy().T)
    err = capsys.readouterr().err
    assert "structdrop.feature_moments" in err and "3/3" in err


def test_bad_input_names_the_batch():
    net = _net()
    X, Yt = _data(N=40)
    pairs = [(X[i : i + 4], Yt[i : i + 4]) for i in range(0, 40, 4)]
    with pytest.raises(TypeError, match="batch 2 is a Tensor"):
        feature_moments(net, pairs[:2] + [X[8:12]])
    with pytest.raises(TypeError, match="batch 0 is a tuple of length 3"):
        feature_moments(net, [(X[:4], Yt[:4], Yt[:4])])
    with pytest.raises(ValueError, match=r"batch 0 it returned shape \(4,\)"):
        feature_moments(lambda x: x[:, 0], pairs)
    with pytest.raises(ValueError, match=r"d = 7 before, batch 3 gave shape \(4, 5\)"):
        feature_moments(lambda x: net(x) if x[0, 0] != X[12, 0] else net(x)[:, :5], pairs)
    with pytest.raises(
        ValueError,
        match=r"batch 1: the features are for 4 samples but the targets have shape \(3, 3\)",
    ):
        feature_moments(net, [pairs[0], (X[4:8], Yt[4:7])])
    with pytest.raises(ValueError, match=r"a = 3 before, batch 1 has targets of shape \(4, 2\)"):
        feature_moments(net, [pairs[0], (X[4:8], Yt[4:8, :2])])
    with pytest.raises(ValueError, match="batch 0 must have shape"):
        feature_moments(net, [(X[:4], Yt[:4, :, None])])
    with pytest.raises(ValueError, match="num_classes"):
        feature_moments(net, [(X[:4], torch.arange(4))])
    with pytest.raises(ValueError, match="class indices of shape"):
        feature_moments(net, [(X[:4], Yt[:4])], num_classes=3)
    with pytest.raises(ValueError, match=r"batch 1 contain labels outside 0..2"):
        feature_moments(
            net,
            [(X[:4], torch.tensor([0, 1, 2, 0])), (X[4:8], torch.tensor([0, 3, 1, 1]))],
            num_classes=3,
        )
    with pytest.raises(ValueError, match="no batches"):
        feature_moments(net, [])
    with pytest.raises(TypeError, match="features must return a tensor"):
        feature_moments(lambda x: x.numpy(), pairs)
    with pytest.raises(TypeError, match="features must be"):
        feature_moments("net", pairs)
    with pytest.raises(TypeError, match="loader must be"):
        feature_moments(net, X)
    with pytest.raises(TypeError, match="progress must be a bool or a delay"):
        feature_moments(net, pairs, progress="yes")
    with pytest.raises(ValueError, match="num_classes"):
        feature_moments(net, pairs, num_classes=0)


@pytest.mark.parametrize("bad", [3, CHECK_EVERY + 4])  # before and after the first periodic check
def test_nan_features_or_targets_name_the_first_bad_batch(bad):
    net = _net()
    net.train()
    X, Yt = _data(N=4 * (CHECK_EVERY + 8))
    Xbad = X.clone()
    Xbad[4 * bad + 1, 2] = float("nan")
    Xbad[4 * (bad + 2), 0] = float("inf")  # a later bad batch is not the one named
    with pytest.raises(
        ValueError, match=rf"features returned NaN or infinite values for batch {bad}$"
    ):
        feature_moments(net, DataLoader(TensorDataset(Xbad, Yt), batch_size=4))
    assert net.training and all(m.training for m in net.modules())  # restored after the error too
    Ybad = Yt.clone()
    Ybad[4 * bad + 3, 0] = float("nan")
    with pytest.raises(ValueError, match=rf"the targets of batch {bad} contain NaN"):
        feature_moments(net, DataLoader(TensorDataset(X, Ybad), batch_size=4))


def test_overflow_of_the_float64_sums_is_an_error():
    with pytest.raises(ValueError, match="overflow float64"):
        feature_moments(
            lambda x: x, [(torch.full((2, 2), 1e200, dtype=torch.float64), torch.zeros(2, 1))]
        )


# ---- torch.distributed: two gloo processes, each with part of the data ---------------------------


def _shared_problem():
    """The same net and data in every process (seeded)."""
    net = _net(seed=5)
    X, Yt = _data(N=53, seed=6)
    return net, X, Yt


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    outcome = {}
    try:
        net, X, Yt = _shared_problem()
        share = slice(0, 29) if rank == 0 else slice(29, 53)  # uneven shares
        loader = DataLoader(TensorDataset(X[share], Yt[share]), batch_size=8)
        outcome["sum"] = feature_moments(net, loader)
        outcome["local"] = feature_moments(net, loader, all_reduce=False)
        # process 1 has no data at all: the sum is process 0's moments
        outcome["empty"] = feature_moments(net, loader if rank == 0 else [])
        bad = X[share].clone()
        if rank == 1:
            bad[10, 0] = float("nan")  # batch 1 of process 1
        try:
            feature_moments(net, DataLoader(TensorDataset(bad, Yt[share]), batch_size=8))
        except Exception as exc:
            outcome["nan"] = (type(exc).__name__, str(exc))
        try:
            feature_moments(lambda x: net(x)[:, : 7 - rank], loader)
        except Exception as exc:
            outcome["shape"] = (type(exc).__name__, str(exc))
    finally:
        dist.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(outcome, f)


@pytest.mark.slow
def test_distributed_moments_are_summed_over_processes(tmp_path):
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    mp.spawn(
        _distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True
    )
    outcomes = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in range(2)]
    net, X, Yt = _shared_problem()
    G, Y = _materialised(net, X), Yt.numpy().T
    for rank, outcome in enumerate(outcomes):
        _close(outcome["sum"], G, Y)  # every process gets the moments of all 53 samples
        share = slice(0, 29) if rank == 0 else slice(29, 53)
        _close(outcome["local"], G[:, share], Y[:, share])
        _close(outcome["empty"], G[:, :29], Y[:, :29])
    # summing the processes' own moments by hand gives the same to 1e-12
    by_hand = outcomes[0]["local"].gram + outcomes[1]["local"].gram
    np.testing.assert_allclose(
        outcomes[0]["sum"].gram, by_hand, rtol=1e-12, atol=1e-12 * np.abs(by_hand).max()
    )
    # an error on one process raises there and names that process on the other: nobody hangs
    assert outcomes[1]["nan"] == (
        "ValueError",
        "features returned NaN or infinite values for batch 1",
    )
    assert outcomes[0]["nan"][0] == "RuntimeError" and "process(es) [1]" in outcomes[0]["nan"][1]
    for outcome in outcomes:
        assert (
            outcome["shape"][0] == "ValueError" and "{0: (7, 3), 1: (6, 3)}" in outcome["shape"][1]
        )


# ---- the deep experiment records its objective from these moments --------------------------------


def test_deep_experiment_objective_equals_the_materialised_lemma1():
    rng = np.random.default_rng(7)
    labels = np.arange(60) % 10
    data = (
        rng.standard_normal((10, 1, 8, 8))[labels] + 0.3 * rng.standard_normal((60, 1, 8, 8)),
        labels,
    )
    res = sdt.deep_experiment(0.5, dataset=data, epochs=0, seed=3, device="cpu", trunk="small_cnn")
    # the same initial network, built independently, with all features materialised at once
    torch.manual_seed(3)
    net = deep._Net(*deep.small_cnn(1), 10, 0.5)
    images, y, _ = deep.load_dataset(data)
    net.eval()
    with torch.no_grad():
        G = net.features(images).to(torch.float64).T
    U = net.last.weight.detach().to(torch.float64)
    Y = torch.nn.functional.one_hot(y, 10).to(torch.float64).T
    exact = float(sdt.feature_objective(sdt.SchemeSpec("dropblock", 0.5, 5), G, Y, U))
    assert res.objective.shape == (1,)
    assert res.objective[0] == pytest.approx(exact, rel=1e-10)
    sv = np.linalg.svd((U @ G).numpy(), compute_uv=False)
    np.testing.assert_allclose(res.singular_values, sv, rtol=0, atol=1e-7 * sv[0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_moments_on_cuda_equal_the_materialised_products():
    net = _net(torch.float32, seed=8).cuda()
    X, Yt = _data(N=301, dtype=torch.float32)
    labels = torch.arange(301) % 5
    moments = feature_moments(
        net, DataLoader(TensorDataset(X, labels), batch_size=64), num_classes=5
    )
    assert net[0].weight.device.type == "cuda"  # the default device is the module's
    _close(moments, _materialised(net, X.cuda(), 64), np.eye(5)[labels.numpy()].T)

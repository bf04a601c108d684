"""BoundMonitor: its objective is the mean of the actual stochastic loss, its bounds are the
closed-form minima, and they stay ordered along training."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")
import structdrop  # noqa: E402
from structdrop.torch import monitor as monitor_module  # noqa: E402

D, A, N = 10, 3, 40


def _layers(kind, bias):
    """(dropout layer, head) of each supported kind, in float64."""
    if kind == "dropconnect":
        return None, sdt.DropConnectLinear(D, A, theta=0.6, bias=bias).double()
    head = torch.nn.Linear(D, A, bias=bias).double()
    drop = {
        "dropout": torch.nn.Dropout(0.35),
        "dropblock": sdt.DropBlock1d(5, theta=0.6, overlapping=False),
        "overlapping": sdt.OverlappingDropBlock1d(3, theta=0.55),
    }[kind]
    return drop, head


KINDS = ["dropout", "dropblock", "overlapping", "dropconnect"]


def _network(seed):
    gen = torch.Generator().manual_seed(seed)
    trunk = torch.nn.Sequential(torch.nn.Linear(4, D), torch.nn.Tanh()).double()
    with torch.no_grad():
        for p in trunk.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    X = torch.randn(N, 4, generator=gen, dtype=torch.float64)
    return trunk, X, gen


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_objective_is_the_mean_of_the_stochastic_loss(kind, bias):
    trunk, X, gen = _network(1)
    drop, head = _layers(kind, bias)
    with torch.no_grad():
        head.weight.copy_(torch.randn(A, D, generator=gen, dtype=torch.float64))
        if bias:
            head.bias.copy_(3.0 * torch.randn(A, generator=gen, dtype=torch.float64))
    labels = torch.randint(0, A, (N,), generator=gen)
    loader = [(X[:25], labels[:25]), (X[25:], labels[25:])]  # batches of different sizes
    rec = sdt.BoundMonitor(trunk, head, drop, loader, num_classes=A).evaluate()

    # The actual stochastic loss: the layers in train mode, many mask draws on the same weights.
    draws = 4000
    torch.manual_seed(2)
    Y = torch.nn.functional.one_hot(labels, A).double()
    with torch.no_grad():
        G = trunk(X).repeat(draws, 1)
        if drop is not None:
            drop.train()
            G = drop(G)
        head.train()
        out = head(G)
    losses = (out - Y.repeat(draws, 1)).square().sum(1).reshape(draws, N).sum(1).numpy()
    mean, se = losses.mean(), losses.std(ddof=1) / np.sqrt(draws)
    # 5 standard errors (a false alarm about once in 1.7 million) plus float64 rounding of both
    assert abs(mean - rec.objective) <= 5 * se + 1e-9 * mean, (kind, bias, mean, se, rec)
    # the regulariser is what the masks add to the eval-mode loss
    with torch.no_grad():
        head.eval()
        fit = (head(trunk(X)) - Y).square().sum().item()
    assert np.isclose(rec.fit, fit, rtol=1e-10)
    assert rec.regularizer > 0


def _centred_targets(labels, bias):
    Y = np.eye(A)[labels].T
    return Y - Y.mean(1, keepdims=True) if bias else Y


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_lower_bound_is_the_closed_form_minimum(kind, bias):
    trunk, X, gen = _network(3)
    drop, head = _layers(kind, bias)
    labels = torch.randint(0, A, (N,), generator=gen)
    rec = sdt.BoundMonitor(trunk, head, drop, [(X, labels)], num_classes=A).evaluate()
    beta = {"dropout": 0.35 / 0.65, "dropblock": 0.4 / 0.6, "dropconnect": 0.4 / 0.6}
    if kind in beta:  # the layer's rate and the head's width set theta_bar
        r = 5 if kind == "dropblock" else 1
        assert rec.block_size == r
        assert np.isclose(rec.theta_bar, 1 / (1 + (r / D) * beta[kind]), rtol=1e-14)
    Y = _centred_targets(labels.numpy(), bias)
    gm = structdrop.dropblock_global_min(Y, block_size=rec.block_size, theta_bar=rec.theta_bar)
    # both sides from the singular values of the same Y (ours through Y Y^T): 1e-10 relative
    assert np.isclose(rec.lower_bound, gm.objective, rtol=1e-10)
    theory = np.zeros(A)
    theory[: gm.singular_values.size] = gm.singular_values[:A]
    assert np.allclose(rec.theory_singular_values, theory, rtol=1e-8, atol=1e-8 * theory[0])
    # rank up to rounding (centred one-hot targets have an exactly zero singular value)
    tol = 1e-8 * gm.singular_values[0]
    assert np.sum(rec.theory_singular_values > tol) == np.sum(gm.singular_values > tol)
    # the feature bound is the minimum over the features' row space, from the data itself
    with torch.no_grad():
        G = trunk(X).numpy().T
    if bias:
        G = G - G.mean(1, keepdims=True)
    fm = structdrop.dropblock_global_min(Y, block_size=rec.block_size, theta_bar=rec.theta_bar, X=G)
    assert np.isclose(rec.feature_lower_bound, fm.objective, rtol=1e-8)
    sv = np.linalg.svd(head.weight.detach().numpy() @ G, compute_uv=False)
    assert np.allclose(rec.singular_values, sv, rtol=1e-7, atol=1e-9 * sv[0])
    assert rec.relative_gap == pytest.approx(rec.objective / rec.lower_bound - 1, rel=1e-14)


@pytest.mark.parametrize("d, r, theta", [(10, 3, 0.55), (12, 4, 0.3), (8, 8, 0.9), (9, 1, 0.5)])
def test_overlapping_strength_is_the_largest_valid_one(d, r, theta):
    gamma = structdrop.OverlappingDropBlock(r, theta=theta).gamma
    cbar = structdrop.OverlappingDropBlock(r, gamma=gamma).characteristic_matrix(d)
    for rr, beta_bar in monitor_module._overlapping_strengths(d, r, gamma):
        c = beta_bar * d / rr
        E = np.kron(np.eye(d // rr), np.ones((rr, 1)))
        scale = np.abs(cbar).max()
        # C - c E E^T is positive semidefinite, and no larger c keeps it so (the bound is tight)
        assert np.linalg.eigvalsh(cbar - c * E @ E.T).min() >= -1e-10 * scale
        assert np.linalg.eigvalsh(cbar - 1.001 * c * E @ E.T).min() < 0


@pytest.mark.parametrize("seed", range(6))
def test_overlapping_objective_never_below_its_bound(seed):
    # adversarial family: random heads and features of very different scales per unit
    rng = np.random.default_rng(seed)
    d, a, n = 12, 4, 30
    scales = 10.0 ** rng.uniform(-2, 2, d)
    G = scales[:, None] * rng.standard_normal((d, n))
    U = rng.standard_normal((a, d)) / scales[None, :] ** rng.uniform(0, 1)
    Y = rng.standard_normal((a, n))
    drop = sdt.OverlappingDropBlock1d(4, theta=0.4)
    head = torch.nn.Linear(d, a, bias=False).double()
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(U))
    loader = [(torch.as_tensor(G.T), torch.as_tensor(Y.T))]
    rec = sdt.BoundMonitor(torch.nn.Identity(), head, drop, loader).evaluate()
    assert rec.objective >= rec.feature_lower_bound * (1 - 1e-9)
    assert rec.feature_lower_bound >= rec.lower_bound * (1 - 1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_bounds_stay_ordered_along_training(kind):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4)
    X = torch.randn(120, 6, generator=gen)
    labels = torch.randint(0, A, (120,), generator=gen)
    trunk = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, D))
    drop, head = _layers(kind, True)
    head.float()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, labels), batch_size=32, shuffle=True, generator=gen
    )
    mon = sdt.BoundMonitor(trunk, head, drop, loader, num_classes=A, record_every=3)
    layers = [m for m in (trunk, drop, head) if m is not None]
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(5):
        for x, y in loader:
            loss = (net(x) - torch.nn.functional.one_hot(y, A)).square().sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step()
    assert [r.step for r in mon.history] == list(range(3, 21, 3))
    for rec in mon.history:
        assert rec.objective >= rec.feature_lower_bound * (1 - 1e-9)
        assert rec.feature_lower_bound >= rec.lower_bound * (1 - 1e-9)
    assert mon.history[-1].objective < mon.history[0].objective
    assert net.training and all(m.training for m in net.modules())  # modes restored
    arrays = mon.history_arrays()
    assert arrays["objective"].shape == (6,) and arrays["singular_values"].shape == (6, A)


def test_records_compare_copy_and_convert():
    trunk, X, gen = _network(5)
    drop, head = _layers("dropblock", True)
    labels = torch.randint(0, A, (N,), generator=gen)
    mon = sdt.BoundMonitor(trunk, head, drop, [(X, labels)], num_classes=A)
    rec = mon.record()
    assert rec == copy.copy(rec) == copy.deepcopy(rec)
    assert rec != mon.evaluate()  # another evaluation takes another time
    assert (rec == 1) is False
    assert rec.as_dict()["objective"] == rec.objective
    clone = copy.deepcopy(mon)
    assert clone.history == mon.history and clone.history is not mon.history
    assert clone.head is mon.head  # the network is the user's, shared
    empty = sdt.BoundMonitor(trunk, head, drop, [(X, labels)], num_classes=A).history_arrays()
    assert set(empty) == set(rec.as_dict()) and empty["objective"].size == 0


def test_float_targets_device_and_a_bound_method():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, D), torch.nn.BatchNorm1d(D))
            self.drop = sdt.DropBlock1d(2, theta=0.5, overlapping=False)
            self.last = torch.nn.Linear(D, 2)

        def features(self, x):
            return self.body(x)

    net = Net().train()
    gen = torch.Generator().manual_seed(0)
    X, Y = torch.randn(50, 4, generator=gen), torch.randn(50, 2, generator=gen)
    mon = sdt.BoundMonitor(net.features, net.last, net.drop, [(X, Y)], device="cpu")
    rec = mon.evaluate()
    assert net.training  # eval mode for the pass only
    with torch.no_grad():
        net.eval()
        fit = (net.last(net.features(X)) - Y).square().sum().item()  # running statistics
    assert np.isclose(rec.fit, fit, rtol=1e-6)
    Yd = Y.double()
    Yc = (Yd - Yd.mean(0)).numpy().T
    gm = structdrop.dropblock_global_min(Yc, block_size=2, theta_bar=rec.theta_bar)
    assert np.isclose(rec.lower_bound, gm.objective, rtol=1e-10)


class _Writer:
    def __init__(self):
        self.scalars, self.histograms = [], []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_histogram(self, tag, values, step):
        self.histograms.append((tag, np.asarray(values), step))


def test_writer_receives_scalars_and_histograms():
    trunk, X, gen = _network(6)
    drop, head = _layers("dropout", False)
    labels = torch.randint(0, A, (N,), generator=gen)
    writer = _Writer()
    mon = sdt.BoundMonitor(
        trunk, head, drop, [(X, labels)], num_classes=A, record_every=2, writer=writer
    )
    assert mon.step() is None
    rec = mon.step()
    assert rec is not None and rec.step == 2
    tags = {t: (v, s) for t, v, s in writer.scalars}
    assert tags["structdrop/objective"] == (rec.objective, 2)
    assert tags["structdrop/relative_gap"] == (rec.relative_gap, 2)
    assert tags["structdrop/lower_bound"][0] == rec.lower_bound
    assert tags["structdrop/feature_lower_bound"][0] == rec.feature_lower_bound
    hist = {t: v for t, v, _ in writer.histograms}
    assert np.array_equal(hist["structdrop/singular_values"], rec.singular_values)


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    trunk, X, gen = _network(7)
    drop, head = _layers("dropblock", True)
    labels = torch.randint(0, A, (N,), generator=gen)
    writer = SummaryWriter(log_dir=str(tmp_path))
    mon = sdt.BoundMonitor(trunk, head, drop, [(X, labels)], num_classes=A, writer=writer)
    for _ in range(3):
        mon.step()
    writer.close()
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    values = [e.value for e in acc.Scalars("structdrop/objective")]
    assert np.allclose(values, [r.objective for r in mon.history], rtol=1e-6)
    assert "structdrop/singular_values" in acc.Tags()["histograms"]


def test_bad_input():
    trunk, X, gen = _network(8)
    labels = torch.randint(0, A, (N,), generator=gen)
    data = [(X, labels)]
    drop = sdt.DropBlock1d(5, theta=0.5, overlapping=False)
    # head whose in_features differ from the features' width
    wrong = torch.nn.Linear(15, A).double()
    with pytest.raises(ValueError, match="in_features = 15 but the features have width 10"):
        sdt.BoundMonitor(trunk, wrong, drop, data, num_classes=A).evaluate()
    head = torch.nn.Linear(D, A).double()
    # unsupported dropout layer: the message names the supported ones
    with pytest.raises(TypeError, match="AlphaDropout.*nn.Dropout.*DropBlock1d.*Overlapping"):
        sdt.BoundMonitor(trunk, head, torch.nn.AlphaDropout(0.5), data, num_classes=A)
    with pytest.raises(TypeError, match="unsupported dropout layer NoneType"):
        sdt.BoundMonitor(trunk, head, None, data, num_classes=A)
    with pytest.raises(TypeError, match="dropout=None"):
        sdt.BoundMonitor(trunk, sdt.DropConnectLinear(D, A, theta=0.5), drop, data, num_classes=A)
    with pytest.raises(TypeError, match="nn.Linear"):
        sdt.BoundMonitor(trunk, torch.nn.Conv1d(D, A, 1), drop, data, num_classes=A)
    # a block size that does not divide the width
    with pytest.raises(ValueError, match="block_size"):
        sdt.BoundMonitor(
            trunk, head, sdt.DropBlock1d(3, theta=0.5, overlapping=False), data, num_classes=A
        )
    with pytest.raises(ValueError, match="block_size"):
        sdt.BoundMonitor(trunk, head, sdt.OverlappingDropBlock1d(11, theta=0.5), data)
    # an empty loader
    with pytest.raises(ValueError, match="no batches"):
        sdt.BoundMonitor(trunk, head, drop, [], num_classes=A).evaluate()
    # integer targets without num_classes
    with pytest.raises(ValueError, match="num_classes"):
        sdt.BoundMonitor(trunk, head, drop, data).evaluate()
    # targets of another width than the head's outputs
    with pytest.raises(ValueError, match="out_features = 3 but the targets have 5"):
        sdt.BoundMonitor(trunk, head, drop, data, num_classes=5).evaluate()
    with pytest.raises(TypeError, match="re-iterable"):
        sdt.BoundMonitor(trunk, head, drop, iter(data), num_classes=A)
    with pytest.raises(TypeError, match="loader"):
        sdt.BoundMonitor(trunk, head, drop, X, num_classes=A)
    with pytest.raises(ValueError, match="every"):
        sdt.BoundMonitor(trunk, head, drop, data, num_classes=A, record_every=0)
    with pytest.raises(TypeError, match="add_scalar"):
        sdt.BoundMonitor(trunk, head, drop, data, num_classes=A, writer=object())
    with pytest.raises(TypeError, match="progress"):
        sdt.BoundMonitor(trunk, head, drop, data, num_classes=A, progress="yes")
    with pytest.raises(ValueError, match="p=1"):
        sdt.BoundMonitor(trunk, head, torch.nn.Dropout(1.0), data, num_classes=A)


@pytest.mark.slow
def test_import_structdrop_torch_loads_neither_lightning_nor_tensorboard():
    import subprocess
    import sys

    code = (
        "import sys, structdrop.torch; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'tensorboard')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"  # (an editable build may print first)


def _ddp_problem():
    trunk, X, gen = _network(9)
    drop, head = _layers("overlapping", True)
    with torch.no_grad():
        head.weight.copy_(torch.randn(A, D, generator=gen, dtype=torch.float64))
        head.bias.copy_(torch.randn(A, generator=gen, dtype=torch.float64))
    labels = torch.randint(0, A, (N,), generator=gen)
    return trunk, drop, head, X, labels


def _ddp_worker(rank, world, init_file, out_dir):
    import os
    import pickle

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        trunk, drop, head, X, labels = _ddp_problem()
        share = slice(0, 27) if rank == 0 else slice(27, N)  # uneven shares
        Xs, ys = X[share], labels[share]
        loader = [(Xs[i : i + 8], ys[i : i + 8]) for i in range(0, len(ys), 8)]
        rec = sdt.BoundMonitor(trunk, head, drop, loader, num_classes=A).evaluate()
        empty = [] if rank == 1 else [(X, labels)]  # process 1 has no data at all
        rec_empty = sdt.BoundMonitor(trunk, head, drop, empty, num_classes=A).evaluate()
    finally:
        dist.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump((rec, rec_empty), f)


@pytest.mark.slow
def test_distributed_evaluation_sums_over_processes(tmp_path):
    import pickle

    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    trunk, drop, head, X, labels = _ddp_problem()
    whole = sdt.BoundMonitor(trunk, head, drop, [(X, labels)], num_classes=A).evaluate()
    names = ("objective", "lower_bound", "feature_lower_bound", "n_samples")
    for rank in range(2):
        for rec in pickle.loads((tmp_path / f"rank{rank}.pkl").read_bytes()):
            for name in names:  # moments summed in another order: 1e-10 relative
                assert np.isclose(getattr(rec, name), getattr(whole, name), rtol=1e-10), name
            assert np.allclose(rec.singular_values, whole.singular_values, rtol=1e-8)

"""batched_train against an independent NumPy Algorithm 1, its own exact objectives, Monte Carlo,
and (when merged) the C++ engine structdrop.train."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")
from _batched_draws import draws_for_testing  # noqa: E402

from structdrop.torch import SchemeSpec  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SPECS = [
    SchemeSpec("none"),
    SchemeSpec("dropout", 0.6),
    SchemeSpec("dropblock", 0.5, 2),
    SchemeSpec("overlapping", 0.75**2, 2, 0.25),
    SchemeSpec("dropconnect", 0.7),
]


def _problem(seed=0, a=3, b=4, d=6, N=9):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((b, N))
    Y = rng.standard_normal((a, 2)) @ rng.standard_normal((2, N))
    return X, Y, 0.5 * rng.standard_normal((a, d)), 0.5 * rng.standard_normal((b, d))


def _numpy_algorithm1(X, Y, U, V, spec, lr, masks, indices, lr_decay=None):
    """Algorithm 1 written out with NumPy, for one run, given its masks and sample indices."""
    U, V = U.copy(), V.copy()
    for t in range(indices.shape[0]):
        x = X[:, indices[t]]  # b x B
        y = Y[:, indices[t]]  # a x B
        B = x.shape[1]
        eta = lr if lr_decay is None else lr / (1 + t / lr_decay)  # step t + 1 of 1, 2, ...
        gU, gV = np.zeros_like(U), np.zeros_like(V)
        for s in range(B):  # mean of per-sample steps, each sample with its own mask
            xs, ys = x[:, s : s + 1], y[:, s : s + 1]
            if spec.kind == "dropconnect":
                Vt = masks[t, s] * V
                eps = U @ Vt.T @ xs - ys
                gU += eps @ xs.T @ Vt / B
                gV += masks[t, s] * (xs @ eps.T @ U) / B
            else:
                Dz = np.diag(masks[t, s]) if masks is not None else np.eye(U.shape[1])
                eps = U @ Dz @ V.T @ xs - ys
                gU += eps @ xs.T @ V @ Dz / B
                gV += xs @ eps.T @ U @ Dz / B
        U, V = U - eta * gU, V - eta * gV
    return U, V


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_steps_equal_numpy_algorithm1(spec):
    X, Y, U0, V0 = _problem()
    a, d = U0.shape
    b, N = X.shape
    runs, iters, B = 3, 11, 2
    res = sdt.batched_train(
        X,
        Y,
        U0,
        V0,
        spec,
        0.05,
        iters,
        runs=runs,
        batch_size=B,
        record_every=4,
        seed=5,
        device="cpu",
        chunk_steps=3,
    )
    masks, idx = draws_for_testing(spec, a, b, d, N, res.seeds, iters + 1, B)
    for r in range(runs):
        U, V = _numpy_algorithm1(
            X, Y, U0, V0, spec, 0.05, None if masks is None else masks[r], idx[r, :iters]
        )
        np.testing.assert_allclose(res.U[r], U, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res.V[r], V, rtol=1e-10, atol=1e-12)
        # the last stochastic record uses the mask the next step would draw for its first sample
        if masks is None:
            fit = np.sum((Y - U @ V.T @ X) ** 2)
        elif spec.kind == "dropconnect":
            fit = np.sum((Y - U @ (masks[r, iters, 0] * V).T @ X) ** 2)
        else:
            fit = np.sum((Y - U @ np.diag(masks[r, iters, 0]) @ V.T @ X) ** 2)
        assert np.isclose(res.stochastic_objective[r, -1], fit, rtol=1e-9)
    assert list(res.record_iterations) == [0, 4, 8, 11]
    # the draws are those of the documented distribution: masks scaled by their inverse mean
    if masks is not None and spec.kind in ("dropout", "dropblock", "dropconnect"):
        assert set(np.unique(masks).tolist()) <= {0.0, 1.0 / spec.theta}
    assert idx.min() >= 0 and idx.max() < N


def test_lr_decay_per_run_initial_weights_and_float32():
    X, Y, U0, V0 = _problem(1)
    spec = SchemeSpec("dropblock", 0.5, 3)
    rng = np.random.default_rng(2)
    U0s = U0 + 0.1 * rng.standard_normal((2,) + U0.shape)
    V0s = V0 + 0.1 * rng.standard_normal((2,) + V0.shape)
    res = sdt.batched_train(
        X, Y, U0s, V0s, spec, 0.05, 9, runs=2, lr_decay=4.0, seed=7, device="cpu"
    )
    masks, idx = draws_for_testing(spec, 3, 4, 6, 9, res.seeds, 9)
    for r in range(2):
        U, V = _numpy_algorithm1(X, Y, U0s[r], V0s[r], spec, 0.05, masks[r], idx[r], lr_decay=4.0)
        np.testing.assert_allclose(res.U[r], U, rtol=1e-10, atol=1e-12)
    res32 = sdt.batched_train(
        X,
        Y,
        U0s,
        V0s,
        spec,
        0.05,
        9,
        runs=2,
        lr_decay=4.0,
        seed=7,
        device="cpu",
        dtype=torch.float32,
    )
    assert res32.U.dtype == np.float32
    np.testing.assert_allclose(res32.U, res.U, rtol=1e-4, atol=1e-5)


def test_run_depends_only_on_its_seed():
    X, Y, U0, V0 = _problem(3)
    spec = SchemeSpec("dropout", 0.5)
    many = sdt.batched_train(X, Y, U0, V0, spec, 0.05, 50, runs=5, seed=100, device="cpu")
    one = sdt.batched_train(
        X, Y, U0, V0, spec, 0.05, 50, runs=1, seed=103, device="cpu", chunk_steps=7
    )
    np.testing.assert_allclose(many.U[3], one.U[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        many.deterministic_objective[3], one.deterministic_objective[0], rtol=1e-12
    )
    assert not np.allclose(many.U[2], many.U[3])


@pytest.mark.parametrize("spec", SPECS[1:], ids=lambda s: s.kind)
def test_recorded_objectives_exact_and_stochastic_mean(spec):
    X, Y, U0, V0 = _problem(4)
    runs = 400
    res = sdt.batched_train(
        X, Y, U0, V0, spec, 0.02, 60, runs=runs, record_every=30, seed=1, device="cpu"
    )
    # the deterministic record is the exact objective of the recorded weights
    for r in (0, runs - 1):
        t = [torch.as_tensor(m) for m in (X, Y, res.U[r], res.V[r])]
        assert np.isclose(
            res.deterministic_objective[r, -1], float(sdt.objective(spec, *t)), rtol=1e-10
        )
    # the stochastic record (one fresh mask) is an unbiased estimate of it: Monte Carlo over runs
    diff = res.stochastic_objective - res.deterministic_objective
    for k in range(diff.shape[1]):
        se = diff[:, k].std(ddof=1) / np.sqrt(runs)
        assert abs(diff[:, k].mean()) <= 4.5 * se, (k, diff[:, k].mean(), se)
    assert not res.diverged.any()


def test_sample_indices_uniform_and_masks_keep_rate():
    masks, idx = draws_for_testing(SchemeSpec("dropout", 0.3), 1, 1, 10, 7, np.arange(20), 500)
    counts = np.bincount(idx.ravel(), minlength=7)
    expected = idx.size / 7
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 30  # chi-square with 6 degrees of freedom: P(> 30) < 1e-4
    kept = (masks > 0).mean()
    assert abs(kept - 0.3) < 5 * np.sqrt(0.3 * 0.7 / masks.size)


def test_divergence_is_flagged_not_raised():
    X, Y, U0, V0 = _problem(5)
    with np.errstate(all="ignore"):
        res = sdt.batched_train(
            X,
            Y,
            10 * U0,
            10 * V0,
            SchemeSpec("dropout", 0.5),
            5.0,
            200,
            runs=2,
            record_every=50,
            device="cpu",
        )
    assert res.diverged.all()


def test_bad_input():
    X, Y, U0, V0 = _problem(6)
    spec = SchemeSpec("dropblock", 0.5, 2)
    with pytest.raises(ValueError, match="cuda_graph"):
        sdt.batched_train(X, Y, U0, V0, spec, 0.1, 5, device="cpu", cuda_graph=True)
    with pytest.raises(ValueError, match="block_size"):
        sdt.batched_train(X, Y, U0, V0, SchemeSpec("dropblock", 0.5, 4), 0.1, 5, device="cpu")
    with pytest.raises(ValueError, match="U0"):
        sdt.batched_train(X, Y, U0.T, V0, spec, 0.1, 5, device="cpu")
    with pytest.raises(ValueError, match="V0"):
        sdt.batched_train(X, Y, U0, np.stack([V0] * 3), spec, 0.1, 5, runs=2, device="cpu")
    with pytest.raises(ValueError, match="Y"):
        sdt.batched_train(X, Y[:, :3], U0, V0, spec, 0.1, 5, device="cpu")
    with pytest.raises(ValueError, match="lr"):
        sdt.batched_train(X, Y, U0, V0, spec, 0.0, 5, device="cpu")
    with pytest.raises(TypeError, match="dtype"):
        sdt.batched_train(X, Y, U0, V0, spec, 0.1, 5, device="cpu", dtype=torch.int64)
    with pytest.raises(ValueError, match="NaN"):
        sdt.batched_train(X * np.nan, Y, U0, V0, spec, 0.1, 5, device="cpu")
    with pytest.raises(TypeError, match="scheme"):
        sdt.batched_train(X, Y, U0, V0, "dropout", 0.1, 5, device="cpu")


def test_statistically_equivalent_to_cpp_engine():
    """Mean recorded objective over independent runs agrees with structdrop.train within its
    standard error at every recording (a 15% change of the step size moves the early records by 3-5
    SE)."""
    import structdrop

    if not hasattr(structdrop, "train"):
        pytest.skip("structdrop.train (the C++ engine) is not merged yet")
    from structdrop import schemes

    X, Y, U0, V0 = _problem(7, a=4, b=5, d=6, N=20)
    lr, iters, runs, every = 0.02, 200, 256, 25
    for scheme in (
        schemes.DropBlock(2, theta=0.5),
        schemes.DropConnect(0.6),
        schemes.OverlappingDropBlock(2, theta=0.5),
    ):
        ours = sdt.batched_train(
            X,
            Y,
            U0,
            V0,
            scheme,
            lr,
            iters,
            runs=runs,
            batch_size=2,
            record_every=every,
            seed=0,
            device="cpu",
        )
        theirs = structdrop.train_many(
            X,
            Y,
            U0,
            V0,
            scheme,
            lr,
            iters,
            batch_size=2,
            record_every=every,
            seed=range(runs),
            threads=1,
        )
        assert np.array_equal(ours.record_iterations, theirs[0].record_iterations)
        # same initial weights: the exact objective at step 0 agrees to rounding
        assert np.allclose(
            ours.deterministic_objective[:, 0], theirs[0].deterministic_objective[0], rtol=1e-10
        )
        for field in ("deterministic_objective", "stochastic_objective"):
            a = getattr(ours, field)
            b = np.array([getattr(r, field) for r in theirs])
            se = np.sqrt(a[:, 1:].var(0, ddof=1) / runs + b[:, 1:].var(0, ddof=1) / runs)
            z = (a[:, 1:].mean(0) - b[:, 1:].mean(0)) / se
            assert np.all(np.abs(z) <= 4.5), (scheme, field, z)


def test_cuda_graph_path_importable_on_cpu():
    from structdrop.torch import batched

    assert callable(batched._capture)  # only ever called on CUDA (guarded by the ValueError above)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_cuda_matches_cpu_and_graph_matches_eager(spec):
    X, Y, U0, V0 = _problem(8)
    kw = dict(runs=16, record_every=20, seed=3)
    cpu = sdt.batched_train(X, Y, U0, V0, spec, 0.03, 60, device="cpu", **kw)
    gpu = sdt.batched_train(X, Y, U0, V0, spec, 0.03, 60, device="cuda", **kw)
    graph = sdt.batched_train(
        X, Y, U0, V0, spec, 0.03, 60, device="cuda", cuda_graph=True, chunk_steps=7, **kw
    )
    np.testing.assert_allclose(gpu.U, cpu.U, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(graph.U, gpu.U, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        graph.deterministic_objective, cpu.deterministic_objective, rtol=1e-8
    )
    f32 = sdt.batched_train(
        X, Y, U0, V0, spec, 0.03, 60, device="cuda", cuda_graph=True, dtype=torch.float32, **kw
    )
    np.testing.assert_allclose(f32.final_objective, cpu.final_objective, rtol=1e-3)


def test_accepts_structdrop_scheme_objects():
    schemes = pytest.importorskip("structdrop.schemes")
    X, Y, U0, V0 = _problem(9)
    for scheme, spec in [
        (schemes.DropBlock(3, theta=0.5), SchemeSpec("dropblock", 0.5, 3)),
        (schemes.OverlappingDropBlock(2, gamma=0.3), SchemeSpec("overlapping", 0.49, 2, 0.3)),
        (schemes.DropConnect(0.6), SchemeSpec("dropconnect", 0.6)),
    ]:
        ours = sdt.batched_train(X, Y, U0, V0, scheme, 0.05, 20, runs=2, device="cpu")
        ref = sdt.batched_train(X, Y, U0, V0, spec, 0.05, 20, runs=2, device="cpu")
        np.testing.assert_array_equal(ours.U, ref.U)
        t = [torch.as_tensor(m) for m in (X, Y, ours.U[1], ours.V[1])]
        assert np.isclose(
            ours.final_objective[1], scheme.objective(*[m.numpy() for m in t]), rtol=1e-10
        )


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("graph", [False, True])
def test_cuda_no_host_sync_per_step(graph):
    """The number of host synchronisations does not grow with the number of steps or recordings."""
    import warnings

    X, Y, U0, V0 = _problem(10)
    spec = SchemeSpec("dropblock", 0.5, 2)

    def syncs(iterations):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                sdt.batched_train(
                    X,
                    Y,
                    U0,
                    V0,
                    spec,
                    0.01,
                    iterations,
                    runs=8,
                    record_every=10,
                    device="cuda",
                    cuda_graph=graph,
                    chunk_steps=5,
                )
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    syncs(20)  # warm-up
    assert syncs(20) == syncs(200)

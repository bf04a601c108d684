"""Torch deterministic objectives against exhaustive enumeration over masks, gradcheck, and (when
present) the NumPy/C++ objectives of structdrop.schemes."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sdt = pytest.importorskip("structdrop.torch")
from structdrop.torch import SchemeSpec  # noqa: E402


def _rand(rng, *shape):
    return rng.standard_normal(shape)


def _unit_masks(spec, d):
    """All (mask, probability) pairs of a unit-mask scheme, by enumeration."""
    if spec.kind == "none":
        yield np.ones(d), 1.0
        return
    if spec.kind == "dropout":
        for z in itertools.product([0, 1], repeat=d):
            z = np.array(z, float)
            yield z, np.prod(np.where(z == 1, spec.theta, 1 - spec.theta))
        return
    if spec.kind == "dropblock":
        k = d // spec.block_size
        for w in itertools.product([0, 1], repeat=k):
            w = np.array(w, float)
            yield (
                np.repeat(w, spec.block_size),
                np.prod(np.where(w == 1, spec.theta, 1 - spec.theta)),
            )
        return
    r, g = spec.block_size, spec.gamma
    for s in itertools.product([0, 1], repeat=d - r + 1):
        z = np.ones(d)
        for j, sj in enumerate(s):
            if sj:
                z[j : j + r] = 0
        yield z, np.prod([g if sj else 1 - g for sj in s])


def _enumerated_objective(spec, Y, U, G):
    pairs = list(_unit_masks(spec, U.shape[1]))
    mu = sum(p * z for z, p in pairs)
    return sum(p * np.sum((Y - U @ np.diag(z / mu) @ G) ** 2) for z, p in pairs), pairs, mu


UNIT_SPECS = [
    SchemeSpec("none"),
    SchemeSpec("dropout", 0.3),
    SchemeSpec("dropblock", 0.6, 2),
    SchemeSpec("dropblock", 0.45, 3),
    SchemeSpec("overlapping", 0.7**2, 2, 0.3),
    SchemeSpec("overlapping", 0.8**3, 3, 0.2),
]


@pytest.mark.parametrize("spec", UNIT_SPECS, ids=lambda s: f"{s.kind}-{s.block_size}")
def test_unit_scheme_objective_equals_enumeration(spec):
    rng = np.random.default_rng(10)
    a, b, d, N = 3, 4, 6, 5
    Y, U, V, X = _rand(rng, a, N), _rand(rng, a, d), _rand(rng, b, d), _rand(rng, b, N)
    G = V.T @ X
    exact, pairs, mu = _enumerated_objective(spec, Y, U, G)
    t = [torch.as_tensor(m) for m in (X, Y, U, V)]
    assert np.isclose(float(sdt.objective(spec, *t)), exact, rtol=1e-12)
    assert np.isclose(
        float(sdt.feature_objective(spec, torch.as_tensor(G), t[1], t[2])), exact, rtol=1e-12
    )
    # C-bar by enumeration: E[z z^T] / (mu mu^T) - 1 (Lemma 10)
    second = sum(p * np.outer(z, z) for z, p in pairs)
    cbar = second / np.outer(mu, mu) - 1
    assert np.allclose(sdt.characteristic_matrix(spec, d).numpy(), cbar, atol=1e-12)
    # generalized_objective from the enumerated mean and covariance
    cov = second - np.outer(mu, mu)
    val = sdt.generalized_objective(
        torch.as_tensor(G), t[1], t[2], torch.as_tensor(mu), torch.as_tensor(cov)
    )
    assert np.isclose(float(val), exact, rtol=1e-12)


def test_dedicated_regularizers_equal_enumeration():
    rng = np.random.default_rng(11)
    a, d, N = 2, 4, 3
    Y, U, G = _rand(rng, a, N), _rand(rng, a, d), _rand(rng, d, N)
    fit = np.sum((Y - U @ G) ** 2)
    tU, tG = torch.as_tensor(U), torch.as_tensor(G)
    exact, _, _ = _enumerated_objective(SchemeSpec("dropout", 0.7), Y, U, G)
    assert np.isclose(float(sdt.dropout_regularizer(tU, tG, 0.7)), exact - fit, rtol=1e-12)
    exact, _, _ = _enumerated_objective(SchemeSpec("dropblock", 0.4, 2), Y, U, G)
    assert np.isclose(float(sdt.dropblock_regularizer(tU, tG, 0.4, 2)), exact - fit, rtol=1e-12)
    exact, _, _ = _enumerated_objective(SchemeSpec("overlapping", 0.5**3, 3, 0.5), Y, U, G)
    value = sdt.overlapping_dropblock_regularizer(tU, tG, 3, theta=0.5**3)
    assert np.isclose(float(value), exact - fit, rtol=1e-12)


def test_dropconnect_equals_enumeration_and_differs_from_printed_theorem_13():
    rng = np.random.default_rng(12)
    a, b, N, d, theta = 2, 3, 4, 2, 0.5
    Y, U, V, X = _rand(rng, a, N), _rand(rng, a, d), _rand(rng, b, d), _rand(rng, b, N)
    exact = 0.0
    for bits in itertools.product([0, 1], repeat=b * d):
        Z = np.array(bits, float).reshape(b, d)
        p = np.prod(np.where(Z == 1, theta, 1 - theta))
        exact += p * np.sum((Y - U @ ((Z / theta) * V).T @ X) ** 2)
    t = [torch.as_tensor(m) for m in (X, Y, U, V)]
    spec = SchemeSpec("dropconnect", theta)
    assert np.isclose(float(sdt.objective(spec, *t)), exact, rtol=1e-12)
    fit = np.sum((Y - U @ V.T @ X) ** 2)
    assert np.isclose(
        float(sdt.dropconnect_regularizer(t[2], t[3], t[0], theta)), exact - fit, rtol=1e-12
    )
    printed = fit + (1 - theta) / theta * np.sum(np.sum(U**2, 0) * np.sum((X.T @ V) ** 2, 0))
    assert abs(printed - exact) > 1e-3 * exact  # the paper's formula is not the expectation here


def test_gradient_of_objective_is_mean_gradient_over_masks():
    # d/dW E_z[loss] = E_z[d loss / dW]: the objective can replace mask sampling in training
    rng = np.random.default_rng(13)
    spec = SchemeSpec("dropblock", 0.5, 2)
    a, d, N = 2, 4, 3
    Y = torch.as_tensor(_rand(rng, a, N))
    U = torch.as_tensor(_rand(rng, a, d), dtype=torch.float64).requires_grad_()
    G = torch.as_tensor(_rand(rng, d, N), dtype=torch.float64).requires_grad_()
    grads = [torch.zeros_like(U), torch.zeros_like(G)]
    for z, p in _unit_masks(spec, d):
        zt = torch.as_tensor(z / 0.5)
        loss = (Y - U @ (zt[:, None] * G)).square().sum()
        gu, gg = torch.autograd.grad(loss, (U, G))
        grads[0] += p * gu
        grads[1] += p * gg
    gu, gg = torch.autograd.grad(sdt.feature_objective(spec, G, Y, U), (U, G))
    assert torch.allclose(gu, grads[0], rtol=1e-12, atol=1e-12)
    assert torch.allclose(gg, grads[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "spec", UNIT_SPECS[1:] + [SchemeSpec("dropconnect", 0.35)], ids=lambda s: s.kind
)
def test_gradcheck(spec):
    rng = np.random.default_rng(14)
    a, b, d, N = 2, 3, 6, 4
    args = [
        torch.as_tensor(_rand(rng, *s)).requires_grad_() for s in ((b, N), (a, N), (a, d), (b, d))
    ]
    assert torch.autograd.gradcheck(lambda *t: sdt.objective(spec, *t), args)


def test_gradcheck_generalized_objective():
    rng = np.random.default_rng(15)
    d = 3
    L = _rand(rng, d, d)
    args = [
        torch.as_tensor(_rand(rng, d, 4)).requires_grad_(),
        torch.as_tensor(_rand(rng, 2, 4)).requires_grad_(),
        torch.as_tensor(_rand(rng, 2, d)).requires_grad_(),
        torch.as_tensor(rng.uniform(0.3, 0.9, d)).requires_grad_(),
        torch.as_tensor(L @ L.T).requires_grad_(),
    ]
    assert torch.autograd.gradcheck(sdt.generalized_objective, args)


def test_float32_and_errors():
    U = torch.randn(2, 4)
    G = torch.randn(4, 5)
    assert sdt.dropblock_regularizer(U, G, 0.5, 2).dtype == torch.float32
    with pytest.raises(ValueError, match="block_size"):
        sdt.dropblock_regularizer(U, G, 0.5, 3)
    with pytest.raises(ValueError, match="U is a x d"):
        sdt.dropout_regularizer(U, torch.randn(3, 5), 0.5)
    with pytest.raises(ValueError, match="theta"):
        sdt.dropout_regularizer(U, G, 0.0)
    with pytest.raises(TypeError):
        sdt.generalized_regularizer(U, G.double(), torch.eye(4))
    with pytest.raises(ValueError, match="DropConnect"):
        sdt.characteristic_matrix(SchemeSpec("dropconnect", 0.5), 4)
    with pytest.raises(TypeError, match="scheme"):
        sdt.objective("dropout", torch.randn(3, 5), torch.randn(2, 5), U, torch.randn(3, 4))
    with pytest.raises(ValueError, match="zero"):
        sdt.generalized_objective(
            G, torch.randn(2, 5), U, torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.eye(4)
        )


# ---------------------------------------------------- agreement with structdrop.schemes (NumPy/C++)
def _numpy_schemes():
    schemes = pytest.importorskip("structdrop.schemes")
    return [
        schemes.NoDropout(),
        schemes.Dropout(0.3),
        schemes.DropBlock(2, theta=0.6),
        schemes.OverlappingDropBlock(3, gamma=0.2),
        schemes.OverlappingDropBlock(2, theta=0.5),
        schemes.DropConnect(0.45),
    ]


def test_objectives_agree_with_numpy_schemes():
    rng = np.random.default_rng(16)
    a, b, d, N = 4, 5, 6, 7
    Y, U, V, X = _rand(rng, a, N), _rand(rng, a, d), _rand(rng, b, d), _rand(rng, b, N)
    t = [torch.as_tensor(m) for m in (X, Y, U, V)]
    for scheme in _numpy_schemes():
        expected = scheme.objective(Y=Y, U=U, V=V, X=X)
        assert np.isclose(float(sdt.objective(scheme, *t)), expected, rtol=1e-12), scheme
        assert np.isclose(
            float(sdt.regularizer(scheme, *t[2:], t[0])),
            scheme.regularizer(U, V, X),
            rtol=1e-11,
            atol=1e-12,
        )
        if type(scheme).__name__ != "DropConnect":
            cbar = sdt.characteristic_matrix(scheme, d).numpy()
            assert np.allclose(cbar, scheme.characteristic_matrix(d), atol=1e-12)


def test_generalized_objective_agrees_with_numpy():
    import structdrop

    if not hasattr(structdrop, "generalized_objective"):
        pytest.skip("structdrop.generalized_objective not merged yet")
    rng = np.random.default_rng(17)
    d = 4
    L = _rand(rng, d, d)
    Y, U, G, mean, cov = (
        _rand(rng, 3, 5),
        _rand(rng, 3, d),
        _rand(rng, d, 5),
        rng.uniform(0.2, 1, d),
        L @ L.T,
    )
    expected = structdrop.generalized_objective(Y=Y, U=U, G=G, mean=mean, covariance=cov)
    got = sdt.generalized_objective(*[torch.as_tensor(m) for m in (G, Y, U, mean, cov)])
    assert np.isclose(float(got), expected.objective, rtol=1e-12)
    cbar = cov / np.outer(mean, mean)
    reg = sdt.generalized_regularizer(*[torch.as_tensor(m) for m in (U, G, cbar)])
    assert np.isclose(float(reg), expected.regularizer, rtol=1e-11)


def test_layers_and_batched_masks_sample_the_numpy_schemes_distributions():
    """Empirical mean and C-bar of the torch masks against structdrop.schemes' exact ones."""
    from _batched_draws import draws_for_testing

    schemes = pytest.importorskip("structdrop.schemes")
    d, n = 10, 20000
    cases = [
        (schemes.DropBlock(5, theta=0.4), sdt.DropBlock1d(5, theta=0.4, overlapping=False)),
        (schemes.OverlappingDropBlock(3, theta=0.5), sdt.OverlappingDropBlock1d(3, theta=0.5)),
        (schemes.Dropout(0.7), sdt.DropBlock1d(1, theta=0.7, overlapping=False)),
    ]
    torch.manual_seed(0)
    for scheme, layer in cases:
        mu = scheme.mask_mean(d)
        cbar = scheme.characteristic_matrix(d)
        second = cbar + 1.0  # E[(z/mu)(z/mu)^T]
        from_layer = layer(torch.ones(n, d, dtype=torch.float64)).numpy()
        masks, _ = draws_for_testing(scheme, 1, 1, d, 1, np.arange(n // 50), 50)
        for scaled in (from_layer, masks.reshape(-1, d)):
            kept = (scaled > 0).astype(float)
            se_mu = np.sqrt(mu * (1 - mu) / len(kept))
            assert np.all(np.abs(kept.mean(0) - mu) <= 5 * se_mu + 1e-12), scheme
            emp = scaled.T @ scaled / len(scaled)
            p_both = second * np.outer(mu, mu)
            se = np.sqrt(p_both * (1 - p_both) / len(scaled)) / np.outer(mu, mu)
            assert np.all(np.abs(emp - second) <= 5 * se + 1e-12), scheme


def test_overlapping_regularizer_is_accurate_at_tiny_seed_rates():
    """gamma = 1e-12: C-bar_ij = (1 - gamma)^(-k) - 1 = k gamma + k(k+1)/2 gamma^2 + ...; the
    subtraction in pow(1 - gamma, -k) - 1 loses about 4 digits there, expm1/log1p none."""
    gamma, d, r = 1e-12, 7, 3
    rng = np.random.default_rng(5)
    U, G = rng.standard_normal((4, d)), rng.standard_normal((d, 30))
    # The exact C-bar from the series (terms beyond gamma^2 are below 1e-35 relative).
    i = np.arange(d)
    lo, hi = np.maximum(i - r + 1, 0), np.minimum(i, d - r)
    k = np.clip(np.minimum.outer(hi, hi) - np.maximum.outer(lo, lo) + 1, 0, None).astype(float)
    cbar = k * gamma + k * (k + 1) / 2 * gamma**2
    expected = np.einsum("ij,ij,ij->", cbar, U.T @ U, G @ G.T)
    value = sdt.overlapping_dropblock_regularizer(
        torch.from_numpy(U), torch.from_numpy(G), r, gamma=gamma
    ).item()
    assert value == pytest.approx(expected, rel=1e-12)

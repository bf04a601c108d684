"""Property-based fuzzing of every public entry point that reaches the compiled core.

Each call either returns a finite answer that satisfies invariants checked against quantities
computed independently here (NumPy sums, the l2/l1 bounds of the r-support norm, the prox
objective at a = 0 and at a = m/(1+beta), search vs sweep), or raises ValueError/TypeError whose
message names the offending argument. Anything else (a crash, another exception type, a silent
inf/nan) fails.

Profiles (hypothesis):
    default  -- "structdrop-fast": few examples, no deadline; part of the default test run.
    STRUCTDROP_FUZZ=long  -- "structdrop-long": 2000 examples per property, e.g.
        STRUCTDROP_FUZZ=long python -m pytest -q tests/package/test_fuzz.py
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import structdrop
from structdrop import _core
from structdrop.schemes import DropBlock, DropConnect, Dropout, NoDropout, OverlappingDropBlock

settings.register_profile(
    "structdrop-fast",
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
settings.register_profile(
    "structdrop-long", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck)
)
PROFILE = "structdrop-long" if os.environ.get("STRUCTDROP_FUZZ") == "long" else "structdrop-fast"
fuzz = settings.get_profile(PROFILE)

OK_ERRORS = (ValueError, TypeError)

# ---------------------------------------------------------------- strategies
SPECIAL = [0.0, -0.0, 1e-300, -1e-300, 1e300, -1e300, 5e-324, np.nan, np.inf, -np.inf, 1.0, -1.0]
DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int32,
    np.int64,
    np.uint8,
    np.bool_,
    np.complex128,
    object,
]


@st.composite
def float_values(draw, shape, allow_special=True):
    n = int(np.prod(shape)) if len(shape) else 1
    elems = st.floats(-1e6, 1e6, allow_nan=False)
    if allow_special:
        elems = st.one_of(elems, st.sampled_from(SPECIAL))
    vals = draw(st.lists(elems, min_size=n, max_size=n))
    return np.array(vals, dtype=np.float64).reshape(shape)


def layout(draw, a):
    """Return ``a`` (float64) in a drawn memory layout: C, Fortran, negative strides or
    unaligned."""
    kind = draw(st.sampled_from(["c", "f", "neg", "unaligned", "strided"]))
    if kind == "f":
        return np.asfortranarray(a)
    if kind == "neg":
        return np.ascontiguousarray(a[::-1, ...] if a.ndim else a)[::-1, ...] if a.ndim else a
    if kind == "unaligned":
        buf = bytearray(8 * a.size + 1)
        out = np.frombuffer(buf, dtype=np.float64, count=a.size, offset=1).reshape(a.shape)
        out[...] = a
        return out
    if kind == "strided" and a.ndim:
        big = np.zeros((a.shape[0] * 2,) + a.shape[1:])
        big[::2] = a
        return big[::2]
    return a


@st.composite
def arrays(draw, ndims=(1, 2), max_side=6, allow_special=True):
    ndim = draw(st.sampled_from(ndims))
    shape = tuple(draw(st.integers(0, max_side)) for _ in range(ndim))
    a = draw(float_values(shape, allow_special))
    dtype = draw(st.sampled_from(DTYPES))
    if dtype is not np.float64:
        with np.errstate(all="ignore"):
            return a.astype(dtype) if dtype is not object else a.astype(object)
    return layout(draw, a)


def bad_message(exc: Exception, *names: str) -> bool:
    msg = str(exc)
    return any(n in msg for n in names)


def check_error(exc: Exception, *names: str) -> None:
    assert isinstance(exc, OK_ERRORS), repr(exc)
    assert bad_message(exc, *names), f"message does not name {names}: {exc}"


def clean_float(a) -> np.ndarray | None:
    """The float64 values the library should see, or None when the input must be rejected."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiub" or a.size == 0:
        return None
    f = a.astype(np.float64)
    return f if np.isfinite(f).all() else None


r_values = st.one_of(
    st.integers(-2, 10), st.sampled_from([0, 2**31, 2**63 - 1, 1.5, True, "2", None])
)
beta_values = st.one_of(
    st.floats(0, 1e6), st.sampled_from([0.0, 1e-300, 1e300, -1.0, np.nan, np.inf, -0.0])
)
theta_values = st.one_of(
    st.floats(0, 1),
    st.sampled_from(
        [0.0, 1.0, 1e-300, 1 - 1e-16, np.nextafter(1, 0), np.nextafter(0, 1), -0.1, 1.1, np.nan]
    ),
)


# ---------------------------------------------------------------- k-support norm
@fuzz
@given(x=arrays(), r=r_values)
def test_ksupport_norm_fuzz(x, r):
    try:
        value = structdrop.ksupport_norm_sq(x, r)
        rho = structdrop.ksupport_split(x, r)
    except Exception as exc:  # noqa: BLE001
        check_error(exc, "x", "block_size")
        return
    clean = clean_float(x)
    assert clean is not None, "bad array accepted"
    assert isinstance(r, (int, np.integer)) and not isinstance(r, bool) and r >= 1
    s = np.abs(clean).ravel() if clean.ndim == 1 else np.linalg.svd(clean, compute_uv=False)
    assert np.isfinite(value) and value >= 0
    assert 1 <= rho <= r
    # ||s||_2^2 <= ||s||_(r)^2 <= ||s||_1^2, computed with a power-of-two scale (no overflow)
    scale = 2.0 ** np.floor(np.log2(s.max())) if s.max() > 0 else 1.0
    l2 = float(np.sum((s / scale) ** 2)) * scale**2
    l1 = float(np.sum(s / scale)) ** 2 * scale**2
    assert l2 * (1 - 1e-9) <= value <= l1 * (1 + 1e-9) + 1e-300


# ---------------------------------------------------------------- prox
@fuzz
@given(m=arrays(ndims=(1,)), r=r_values, beta=beta_values)
def test_prox_fuzz(m, r, beta):
    """Signed vectors are accepted: the result is sign(m) prox(|m|)."""
    results = {}
    for method in ("sweep", "search"):
        try:
            results[method] = structdrop.prox_ksupport_sq(m, r, beta, method=method)
        except Exception as exc:  # noqa: BLE001
            check_error(exc, "m", "block_size", "beta")
            return
    clean = clean_float(m)
    assert clean is not None, "bad m accepted"
    beta = float(beta)
    assert np.isfinite(beta) and beta >= 0
    sweep, search = results["sweep"], results["search"]
    expected_dtype = np.float32 if np.asarray(m).dtype == np.float32 else np.float64
    for res in (sweep, search):
        assert res.values.dtype == expected_dtype and res.values.shape == clean.shape
        assert np.isfinite(res.objective) and np.isfinite(res.values).all()
        assert (res.values * np.sign(clean) >= 0).all() and (
            res.values[clean == 0] == 0
        ).all()  # signs kept
        assert 1 <= res.rho <= r and 0 <= res.rank <= clean.size
    mags = np.abs(clean)
    scale = 2.0 ** np.floor(np.log2(mags.max())) if mags.max() > 0 else 1.0
    ms = mags / scale

    def F(a_scaled):  # objective at a = a_scaled * scale, independent of the kernel
        value = float(np.sum((ms - a_scaled) ** 2)) + beta * structdrop.ksupport_norm_sq(
            a_scaled, r
        )
        return (
            value * scale * scale
        )  # may underflow to 0 like the library's answer; never overflows here

    best = sweep.objective
    zero = F(np.zeros_like(ms))  # = ||m||^2
    assert best <= zero + 1e-9 * zero + 1e-300  # a = 0
    if np.isfinite(beta / (1 + beta)):
        shrunk = F(ms / (1 + beta))
        assert best <= shrunk + 1e-9 * shrunk + 1e-300  # a = m/(1+beta)
    a_sweep = np.abs(sweep.values.astype(np.float64)) / scale
    recomputed = F(a_sweep)
    rounding = 1e-6 if expected_dtype == np.float32 else 1e-7  # float32 values are rounded once
    assert (
        abs(recomputed - best) <= rounding * max(recomputed, best) + 1e-300
    )  # reported = recomputed
    assert abs(search.objective - best) <= 1e-9 * best + 1e-300
    tol = 1e-6 if expected_dtype == np.float32 else 1e-7
    np.testing.assert_allclose(
        np.abs(search.values.astype(np.float64)) / scale, a_sweep, rtol=tol, atol=tol * ms.max()
    )


@fuzz
@given(
    M=arrays(ndims=(2,), max_side=5),
    r=r_values,
    beta=beta_values,
    threads=st.sampled_from([None, 1, 2, 3, -1, 1.5, True]),
)
def test_prox_batch_fuzz(M, r, beta, threads):
    """Each row of the batch equals the single call on that row, bit for bit."""
    try:
        res = structdrop.prox_ksupport_sq_batch(M, r, beta, threads=threads)
    except Exception as exc:  # noqa: BLE001
        check_error(exc, "M", "block_size", "beta", "threads")
        return
    clean = clean_float(M)
    assert clean is not None and clean.ndim == 2, "bad M accepted"
    assert threads is None or (type(threads) is int and threads >= 1)
    for i in range(clean.shape[0]):
        single = structdrop.prox_ksupport_sq(np.asarray(M)[i], r, beta)
        np.testing.assert_array_equal(res.values[i], single.values)
        assert (
            res.objective[i] == single.objective
            and res.rho[i] == single.rho
            and res.rank[i] == single.rank
        )


@fuzz
@given(m=arrays(ndims=(2,), max_side=5), r=r_values, beta=beta_values)
def test_prox_matrix_fuzz(m, r, beta):
    """2-D input: the spectral prox; its objective is ||m - A||_F^2 + beta ||sigma(A)||_(r)^2."""
    try:
        res = structdrop.prox_ksupport_sq(m, r, beta)
    except Exception as exc:  # noqa: BLE001
        check_error(exc, "m", "block_size", "beta")
        return
    clean = clean_float(m)
    assert clean is not None and clean.ndim == 2
    assert (
        res.values.shape == clean.shape
        and np.isfinite(res.values).all()
        and np.isfinite(res.objective)
    )
    sc = np.abs(clean).max() or 1.0
    A = res.values.astype(np.float64) / sc
    direct = float(np.sum((clean / sc - A) ** 2)) + float(beta) * structdrop.ksupport_norm_sq(A, r)
    floor = 1e-12 * float(np.sum((clean / sc) ** 2)) * sc * sc  # the SVD's rounding of m - A
    assert (
        abs(direct * sc * sc - res.objective)
        <= 1e-5 * max(res.objective, direct * sc * sc) + floor + 1e-300
    )


# ---------------------------------------------------------------- global minimum and sweeps
@fuzz
@given(
    Y=arrays(ndims=(2,), max_side=4),
    r=r_values,
    theta=theta_values,
    method=st.sampled_from(["sweep", "search"]),
)
def test_dropblock_global_min_fuzz(Y, r, theta, method):
    try:
        res = structdrop.dropblock_global_min(Y, block_size=r, theta_bar=theta, method=method)
    except Exception as exc:  # noqa: BLE001
        check_error(exc, "Y", "block_size", "theta_bar")
        return
    clean = clean_float(Y)
    assert clean is not None
    assert 0 < float(theta) <= 1
    assert np.isfinite(res.objective) and res.objective >= 0
    # no larger than the value at A = 0 (||Y||^2), computed independently with a scale
    sc = np.abs(clean).max() or 1.0
    assert res.objective / sc / sc <= float(np.sum((clean / sc) ** 2)) * (1 + 1e-9) + 1e-300


@fuzz
@given(
    x=arrays(ndims=(1, 2), max_side=4),
    sizes=st.one_of(
        st.lists(st.integers(-1, 6), max_size=3), st.sampled_from([[1.5], [True], "a", [[1]]])
    ),
    thetas=st.lists(theta_values, max_size=3),
)
def test_sweep_global_min_fuzz(x, sizes, thetas):
    try:
        res = structdrop.sweep_global_min(x, block_sizes=sizes, theta_bars=thetas, threads=1)
    except Exception as exc:  # noqa: BLE001
        check_error(exc, "Y", "block_sizes", "theta_bars")
        return
    assert np.isfinite(res.objective).all() and (res.objective >= 0).all()
    for i, r in enumerate(res.block_sizes):
        for j, t in enumerate(res.theta_bars):
            if np.ndim(x) == 2:
                ref = structdrop.dropblock_global_min(
                    x, block_size=int(r), theta_bar=float(t)
                ).objective
                assert abs(ref - res.objective[i, j]) <= 1e-9 * max(1.0, abs(ref))


@fuzz
@given(
    Y=arrays(ndims=(2,), max_side=4),
    widths=st.lists(st.integers(-2, 12), max_size=3),
    r=r_values,
    theta=theta_values,
)
def test_width_sweep_fuzz(Y, widths, r, theta):
    try:
        res = structdrop.width_sweep(Y, widths, block_size=r, theta_bar=theta, threads=1)
    except Exception as exc:  # noqa: BLE001
        check_error(exc, "Y", "widths", "block_size", "theta_bar", "width")
        return
    for name in vars(res):
        v = getattr(res, name)
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            assert np.isfinite(v).all(), name


# ---------------------------------------------------------------- objectives
schemes = st.one_of(
    st.just(NoDropout()),
    st.builds(lambda t: Dropout(t), st.floats(0.01, 1)),
    st.builds(lambda t, b: DropBlock(b, theta=t), st.floats(0.01, 1), st.integers(1, 3)),
    st.builds(lambda t: DropConnect(t), st.floats(0.01, 1)),
    st.builds(lambda b: OverlappingDropBlock(b, gamma=0.3), st.integers(1, 3)),
)


@fuzz
@given(
    X=arrays(ndims=(2,), max_side=4),
    Y=arrays(ndims=(2,), max_side=4),
    U=arrays(ndims=(2,), max_side=4),
    V=arrays(ndims=(2,), max_side=4),
    scheme=schemes,
)
def test_objectives_fuzz(X, Y, U, V, scheme):
    try:
        terms = scheme.objective_terms(X, Y, U, V)
    except Exception as exc:  # noqa: BLE001
        check_error(exc, "X", "Y", "U", "V", "d", "width", "block")
        return
    assert (
        np.isfinite(terms.objective) and np.isfinite(terms.fit) and np.isfinite(terms.regularizer)
    )
    assert terms.fit >= 0 and terms.regularizer >= -1e-9 * max(1.0, terms.fit)
    assert terms.objective >= terms.fit - 1e-9 * max(1.0, terms.fit)
    # fit against an independent NumPy evaluation
    x, y, u, v = (np.asarray(a, dtype=np.float64) for a in (X, Y, U, V))
    fit = float(np.sum((y - u @ v.T @ x) ** 2))
    assert abs(fit - terms.fit) <= 1e-7 * max(1.0, fit)


@fuzz
@given(X=arrays(ndims=(2,), max_side=4), Y=st.one_of(st.none(), arrays(ndims=(2,), max_side=4)))
def test_data_moments_fuzz(X, Y):
    try:
        mom = structdrop.data_moments(X, Y)
    except Exception as exc:  # noqa: BLE001
        check_error(exc, "X", "Y")
        return
    x = np.asarray(X, dtype=np.float64)
    assert np.isfinite(mom.gram).all(), "overflow returned silently"
    np.testing.assert_allclose(
        mom.gram, x @ x.T, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(x).max(initial=0) ** 2)
    )
    if Y is not None:
        y = np.asarray(Y, dtype=np.float64)
        assert np.isfinite(mom.cross).all() and np.isfinite(mom.y_sq_norm)
        np.testing.assert_allclose(mom.y_sq_norm, np.sum(y**2), rtol=1e-9)


# ---------------------------------------------------------------- training
@fuzz
@given(
    X=arrays(ndims=(2,), max_side=3, allow_special=False),
    Y=arrays(ndims=(2,), max_side=3, allow_special=False),
    d=st.integers(0, 3),
    scheme=schemes,
    lr=st.sampled_from([1e-3, 0.0, -1.0, np.nan, 1e300]),
    iterations=st.sampled_from([1, 5, 0, -1]),
    batch=st.sampled_from([1, 2, 0, 10**6]),
)
def test_train_fuzz(X, Y, d, scheme, lr, iterations, batch):
    rng = np.random.default_rng(0)
    a = np.shape(Y)[0] if np.ndim(Y) == 2 else 1
    b = np.shape(X)[0] if np.ndim(X) == 2 else 1
    U0 = rng.standard_normal((a, d)) * 0.1
    V0 = rng.standard_normal((b, d)) * 0.1
    try:
        res = structdrop.train(
            X, Y, U0, V0, scheme, lr, iterations, batch_size=batch, record_every=2
        )
    except structdrop.TrainingDiverged:
        return  # a documented outcome for a huge step size
    except Exception as exc:  # noqa: BLE001
        check_error(
            exc, "X", "Y", "U0", "V0", "scheme", "lr", "iterations", "batch_size", "width", "block"
        )
        return
    assert np.isfinite(res.U).all() and np.isfinite(res.V).all()
    assert np.isfinite(res.deterministic_objective).all()


# ---------------------------------------------------------------- _core directly
core_arrays = st.one_of(arrays(ndims=(0, 1, 2, 3)), st.sampled_from([None, 1.0, "x", [1.0, 2.0]]))


@fuzz
@given(
    m=core_arrays,
    r=st.one_of(st.integers(-3, 5), st.sampled_from([2**40])),
    beta=beta_values,
    fn=st.sampled_from(["prox_sweep", "prox_search", "ksupport_norm_sq_sorted"]),
)
def test_core_ksupport_rejects(m, r, beta, fn):  # the selection kernels: test_core_select_rejects
    kernel = getattr(_core, fn)
    args = (m, r) if fn == "ksupport_norm_sq_sorted" else (m, r, beta)
    try:
        out = kernel(*args)
    except OK_ERRORS:
        return
    a = np.asarray(m)
    assert a.dtype == np.float64 and a.ndim == 1 and r >= 1, "_core accepted a bad argument"
    vals = out[0] if fn != "ksupport_norm_sq_sorted" else out[0]
    assert np.isfinite(vals).all()


@fuzz
@given(
    x=core_arrays,
    r=st.one_of(st.integers(-3, 5), st.sampled_from([2**40])),
    beta=beta_values,
    out=st.sampled_from(["same", "f32", "short", "none", "alias"]),
    fn=st.sampled_from(["prox_select", "prox_rows", "ksupport_norm_sq_select"]),
)
def test_core_select_rejects(x, r, beta, out, fn):
    """The selection kernels take float32/float64 C-contiguous arrays only, and an out of the same
    dtype and shape that does not overlap the input; anything else raises, nothing crashes."""
    a = np.asarray(x) if x is not None and not isinstance(x, str) else None
    if out == "same" and a is not None:
        dest = np.empty_like(a)
    elif out == "f32" and a is not None:
        dest = np.empty(a.shape, np.float32)
    elif out == "short":
        dest = np.empty(1)
    elif out == "alias":
        dest = x
    else:
        dest = None
    try:
        if fn == "ksupport_norm_sq_select":
            value, rho = _core.ksupport_norm_sq_select(x, r)
        elif fn == "prox_select":
            rho, rank, value = _core.prox_select(x, r, beta, dest)
        else:
            value, rho, rank, bad = _core.prox_rows(x, r, beta, dest, 1)
            assert bad == -1 or not np.isfinite(a[bad]).all()
            return
    except OK_ERRORS:
        return
    assert a is not None and a.dtype in (np.float32, np.float64) and a.ndim == 1 and r >= 1
    assert np.isfinite(a).all(), "non-finite input accepted"
    assert not np.isnan(value)


@fuzz
@given(X=core_arrays, Y=st.one_of(st.none(), core_arrays))
def test_core_moments_rejects(X, Y):
    try:
        gram, cross, ysq = _core.objective_moments(X, Y)
    except OK_ERRORS:
        return
    x = np.asarray(X)
    assert x.dtype == np.float64 and x.ndim == 2
    np.testing.assert_allclose(gram, x @ x.T, rtol=1e-9, atol=1e-300)


@fuzz
@given(m=core_arrays, r=core_arrays, beta=core_arrays, threads=st.sampled_from([0, 1, 2, -1]))
def test_core_prox_batch_rejects(m, r, beta, threads):
    try:
        out = _core.prox_batch(m, r, beta, threads)
    except OK_ERRORS:
        return
    assert np.isfinite(out[0]).all()


@fuzz
@given(
    kind=st.integers(-1, 5),
    theta=theta_values,
    block=st.integers(-1, 4),
    gamma=st.sampled_from([0.3, 0.0, 1.0, -1.0, np.nan]),
    gram=core_arrays,
    cross=core_arrays,
    U=core_arrays,
    V=core_arrays,
)
def test_core_objective_terms_rejects(kind, theta, block, gamma, gram, cross, U, V):
    try:
        scheme = _core.SchemeParams(_core.SchemeKind(kind), theta, block, gamma)
        fit, reg = _core.objective_terms(scheme, gram, cross, 1.0, U, V)
    except OK_ERRORS:
        return
    # accepted: every array must have been float64 2-D and finite
    for a in (gram, cross, U, V):
        a = np.asarray(a)
        assert a.dtype == np.float64 and a.ndim == 2
    assert isinstance(fit, float) and isinstance(reg, float)

"""Memory of the solver and the SGD engine: measured, not inspected.

Python-side allocations (NumPy arrays, including the ones pybind11 creates for results) are
measured with tracemalloc; C++-side allocations (std::vector, Eigen) with the kernel's peak
resident set, VmHWM, reset through /proc/self/clear_refs (Linux). The resident-set tests carry the
resident_memory marker (the sanitizer and qemu-user runs deselect it: their runtimes grow the
resident set); the tracemalloc ones count the bytes asked for and run everywhere.
"""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

import structdrop as sd

MiB = 2**20


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_growth(fn):
    """Peak resident-set growth (bytes) while fn runs, over the resident set before it."""
    if not os.path.exists("/proc/self/status") or not _reset_peak():
        pytest.skip("needs Linux /proc/self/clear_refs")
    before = _status("VmRSS")
    out = fn()
    return _status("VmHWM") - before, out


def traced_peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, out


def test_prox_search_allocates_a_few_input_sizes():
    """The search sorts: a float64 copy of |m|, the argsort permutation, the kernel output and the
    result in input order: about 4 input sizes of Python-side allocations, nothing O(n r)."""
    n = 2 * 10**5
    m = np.random.default_rng(0).exponential(size=n)
    r = 5
    peak, res = traced_peak(lambda: sd.prox_ksupport_sq(m, r, 0.3, method="search"))
    ratio = peak / m.nbytes
    assert 2.0 <= ratio <= 4.5, ratio  # lower bound: the measurement does see the copies
    assert res.values.shape == m.shape


@pytest.mark.resident_memory
def test_prox_search_resident_growth_is_a_few_input_sizes():
    """The same call's peak resident growth, C++ side included: nothing O(n r)."""
    m = np.random.default_rng(0).exponential(size=2 * 10**5)
    growth, _ = peak_rss_growth(lambda: sd.prox_ksupport_sq(m, 5, 0.3, method="search"))
    assert growth <= 7 * m.nbytes, growth / m.nbytes


@pytest.mark.parametrize("signed", [False, True])
def test_prox_sweep_allocates_only_its_output(signed):
    """No sort, no copy of m: Python allocates the result only (nothing with out=), float32 stays
    float32."""
    n = 2 * 10**6
    rng = np.random.default_rng(0)
    m = rng.exponential(size=n) * (np.where(rng.random(n) < 0.5, -1.0, 1.0) if signed else 1.0)
    peak, res = traced_peak(lambda: sd.prox_ksupport_sq(m, 5, 0.3))
    assert 0.99 <= peak / m.nbytes <= 1.2, peak / m.nbytes
    out = np.empty_like(m)
    peak, _ = traced_peak(lambda: sd.prox_ksupport_sq(m, 5, 0.3, out=out))
    assert peak <= 0.05 * m.nbytes, peak / m.nbytes  # with out=: nothing of size n
    m32 = m.astype(np.float32)
    peak, res32 = traced_peak(lambda: sd.prox_ksupport_sq(m32, 5, 0.3))
    assert res32.values.dtype == np.float32 and peak <= 1.2 * m32.nbytes, (
        peak / m32.nbytes
    )  # no float64 copy


@pytest.mark.resident_memory
@pytest.mark.parametrize("signed", [False, True])
def test_prox_sweep_resident_growth_is_the_output_and_a_workspace(signed):
    """The C++ selection's workspace (the units near the threshold) stays a fraction of the
    input: the peak resident growth is the output and little more."""
    n = 2 * 10**6
    rng = np.random.default_rng(0)
    m = rng.exponential(size=n) * (np.where(rng.random(n) < 0.5, -1.0, 1.0) if signed else 1.0)
    growth, _ = peak_rss_growth(lambda: sd.prox_ksupport_sq(m, 5, 0.3))
    assert growth <= 1.6 * m.nbytes, growth / m.nbytes  # output + workspace


def test_ksupport_norm_does_not_copy_more_than_once():
    m = np.random.default_rng(1).exponential(size=2 * 10**6)
    peak, _ = traced_peak(lambda: sd.ksupport_norm_sq(m, 10))
    assert peak <= 2.5 * m.nbytes, peak / m.nbytes


def _train_problem(N, b=40, a=5, d=4, order="F"):
    rng = np.random.default_rng(2)
    X = np.asarray(rng.standard_normal((b, N)), order=order)
    Y = np.asarray(rng.standard_normal((a, N)), order=order)
    U0 = 0.1 * rng.standard_normal((a, d))
    V0 = 0.1 * rng.standard_normal((b, d))
    return X, Y, U0, V0


def test_train_does_not_copy_fortran_inputs():
    """X, Y already float64 Fortran order: no Python-side copy of the data (the only allocation of
    that order is the finiteness check's boolean mask, 1/8 of the data); C order: exactly one
    copy of X and Y (about 1 data size)."""
    X, Y, U0, V0 = _train_problem(100_000)
    data = X.nbytes + Y.nbytes
    kwargs = dict(scheme=sd.Dropout(0.5), lr=0.01, iterations=200, record_every=100, seed=1)
    peak_f, _ = traced_peak(lambda: sd.train(X, Y, U0, V0, **kwargs))
    assert peak_f <= 0.15 * data, peak_f / data
    Xc, Yc = np.ascontiguousarray(X), np.ascontiguousarray(Y)
    peak_c, _ = traced_peak(lambda: sd.train(Xc, Yc, U0, V0, **kwargs))
    assert 0.9 * data <= peak_c <= 1.2 * data, peak_c / data


@pytest.mark.resident_memory
def test_train_engine_reads_fortran_inputs_in_place():
    """C++ side: the engine reads X, Y in place (resident growth well below one data copy)."""
    X, Y, U0, V0 = _train_problem(100_000)
    data = X.nbytes + Y.nbytes
    kwargs = dict(scheme=sd.Dropout(0.5), lr=0.01, iterations=200, record_every=100, seed=1)
    growth, _ = peak_rss_growth(lambda: sd.train(X, Y, U0, V0, **kwargs))
    assert growth <= 0.5 * data, growth / data


def _flat_run(iterations):
    X, Y, U0, V0 = _train_problem(64, b=8, a=3, d=4)
    before = _status("VmRSS")
    res = sd.train(
        X,
        Y,
        U0,
        V0,
        scheme=sd.Dropout(0.5),
        lr=0.01,
        iterations=iterations,
        record_every=iterations,
        seed=3,
    )
    after = _status("VmRSS")
    return after - before, res


@pytest.mark.resident_memory
def test_long_run_memory_is_flat():
    """10^6 steps with record_every = 10^6: only the 2 recordings are stored; resident memory
    does not grow with the number of steps."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs Linux /proc")
    _flat_run(1000)  # warm up allocators
    growth, res = _flat_run(10**6)
    assert len(res.record_iterations) == 2
    assert growth <= 1 * MiB, growth


def test_recordings_are_the_only_growth():
    """record_every = 1 over 2 * 10^5 steps: memory grows by the recordings (3 arrays of
    iterations + 1 values, 24 bytes per step), and not much more."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs Linux /proc")
    X, Y, U0, V0 = _train_problem(64, b=8, a=3, d=4)
    T = 2 * 10**5
    peak, res = traced_peak(
        lambda: sd.train(
            X, Y, U0, V0, scheme=sd.Dropout(0.5), lr=0.01, iterations=T, record_every=1, seed=3
        )
    )
    recorded = (
        res.record_iterations.nbytes
        + res.stochastic_objective.nbytes
        + res.deterministic_objective.nbytes
    )
    assert recorded >= 24 * T
    assert peak <= 1.5 * recorded + MiB, peak / recorded

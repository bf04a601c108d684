"""The (squared) k-support norm as proximal operators for PyProximal's solvers.

``pip install "structdrop[pyproximal]"``. Importing this module imports pyproximal;
``import structdrop`` never does.

- :class:`KSupportSq` ``(block_size, sigma)``: f(x) = sigma ||x||_(r)^2, with the exact prox of
  :func:`structdrop.prox_ksupport_sq` (expected O(n), no sort).
- :class:`KSupport` ``(block_size, sigma)``: f(x) = sigma ||x||_(r) (the k-support norm itself,
  Argyriou, Foygel, Srebro 2012), its prox through the squared one and a one-dimensional root
  search.

Both follow PyProximal's conventions: ``op(x)`` is the function value, ``op.prox(x, tau)`` is
argmin_a f(a) + ||a - x||^2/(2 tau) for a scalar tau > 0 (PyProximal's solvers call it with
tau = step size, e.g. ``epsg * tau`` in ProximalGradient, possibly a 0-d float32 array), and the
dual prox comes from PyProximal's Moreau identity. Vectors may have any signs; a 2-D ``x`` is a
matrix and the norm is the spectral one (singular values), as
in :func:`structdrop.ksupport_norm_sq`.

With these operators ``pyproximal.ProximalGradient``, ``AcceleratedProximalGradient`` and
``ADMM`` solve k-support-regularised problems; see examples/ksupport_least_squares.py.
"""

from __future__ import annotations

import numpy as np
from pyproximal import ProxOperator

from ._migration import renamed_field, renamed_keywords
from ._validation import as_int, as_nonnegative_float
from .ksupport import ksupport_norm_sq, prox_ksupport_sq

__all__ = ["KSupport", "KSupportSq", "dual_ksupport_norm"]


def _scalar_tau(tau: object) -> float:
    """tau as a float > 0. PyProximal allows arrays of tau for separable functions; the k-support
    norm couples all entries, so only a scalar (or an array of one repeated value) makes sense."""
    values = np.asarray(tau, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"tau must be a finite positive scalar, got {tau!r}")
    if np.any(values <= 0):
        raise ValueError("tau must be positive")
    first = float(values.ravel()[0])
    if np.any(values != first):
        raise ValueError(
            "tau must be a scalar: the k-support norm is not separable, a per-entry tau is "
            "undefined"
        )
    return first


def _sigma(sigma: object) -> float:
    value = as_nonnegative_float("sigma", sigma)
    return value


@renamed_keywords("dual_ksupport_norm", r="block_size")
def dual_ksupport_norm(x: object, block_size: int) -> float:
    """The dual norm of ||.||_(r), r = ``block_size``: the l2 norm of the r largest magnitudes
    (singular values for a matrix). Used for the optimality certificates and for KSupport's zero
    test.

    Returns:
        The dual norm as a float.

    Raises:
        TypeError: a non-integer ``block_size``.
        ValueError: ``block_size`` < 1.

    Example:
        >>> from structdrop.pyproximal import dual_ksupport_norm
        >>> dual_ksupport_norm([3.0, -4.0, 1.0], 2)
        5.0
    """
    block = as_int("block_size", block_size, minimum=1)
    array = np.asarray(x, dtype=np.float64)
    if array.ndim == 2:
        s = np.linalg.svd(array, compute_uv=False)
    else:
        s = np.abs(array.ravel())
        if block < s.size:
            s = np.partition(s, s.size - block)[s.size - block :]
    top = s[:block] if array.ndim == 2 else s
    scale = float(top.max()) if top.size else 0.0
    if scale == 0.0:
        return 0.0
    return float(np.sqrt(np.sum((top / scale) ** 2)) * scale)


class KSupportSq(ProxOperator):
    """f(x) = sigma ||x||_(r)^2, the squared k-support norm (spectral for 2-D x).

    ::

        prox(x, tau) = argmin_a sigma ||a||_(r)^2 + ||a - x||^2/(2 tau)
                     = argmin_a ||x - a||^2 + beta ||a||_(r)^2 with beta = 2 tau sigma,

    i.e. :func:`structdrop.prox_ksupport_sq` (corrected Theorem 7), exact to rounding.

    Args:
        block_size: the support size k (the DropBlock block size), an integer >= 1 (``r=``
            before 1.0).
        sigma: the weight of the penalty, >= 0.

    Raises:
        TypeError: a non-integer ``block_size``.
        ValueError: ``block_size`` < 1 or ``sigma`` negative.

    Example:
        >>> from structdrop.pyproximal import KSupportSq
        >>> op = KSupportSq(2, sigma=0.5)
        >>> op([1.0, 1.0, 1.0]), op.prox([3.0, 1.0, 0.5], 1.0).tolist()
        (2.25, [1.5, 0.5, 0.0])
    """

    @renamed_keywords("KSupportSq", r="block_size")
    def __init__(self, block_size: int, sigma: float = 1.0) -> None:
        super().__init__(None, False)
        self.block_size = as_int("block_size", block_size, minimum=1)
        self.sigma = _sigma(sigma)

    r = renamed_field("r", "block_size", "KSupportSq")

    def __call__(self, x: np.ndarray) -> float:
        return self.sigma * ksupport_norm_sq(x, self.block_size)

    def prox(self, x: np.ndarray, tau: float) -> np.ndarray:
        step = _scalar_tau(tau)
        return prox_ksupport_sq(x, self.block_size, 2.0 * step * self.sigma).values


class KSupport(ProxOperator):
    """f(x) = sigma ||x||_(r), the k-support norm itself (spectral for 2-D x).

    The prox with c = tau sigma, argmin_a c ||a|| + ||a - x||^2/2, is 0 when the dual norm
    ||x||_* (l2 norm of the r largest magnitudes) is <= c. Otherwise its optimality condition
    x - a in c d||a|| matches that of the squared prox p(beta) = argmin ||x - a||^2 + beta ||a||^2,
    x - p in beta ||p|| d||p||, exactly when

        phi(beta) := beta ||p(beta)||_(r) = c.

    phi is continuous and increasing from 0 (beta -> 0, p -> x) to ||x||_* (beta -> inf), so the
    root is unique; it is found by bracketing and the Illinois variant of regula falsi in beta
    (about 10-40 prox evaluations, each O(n)). Relative accuracy of phi(beta) = c: ``rtol``.

    Args:
        block_size: the support size k, an integer >= 1 (``r=`` before 1.0).
        sigma: the weight of the penalty, >= 0.
        rtol: relative tolerance of the scalar equation (default 1e-12).
        maxiter: at most this many evaluations of the squared prox (default 200).

    Raises:
        TypeError: a non-integer ``block_size`` or ``maxiter``.
        ValueError: ``block_size`` or ``maxiter`` < 1, ``sigma`` or ``rtol`` negative.

    Example:
        >>> from structdrop.pyproximal import KSupport
        >>> KSupport(1)([3.0, -4.0])
        7.0
    """

    @renamed_keywords("KSupport", r="block_size")
    def __init__(
        self, block_size: int, sigma: float = 1.0, rtol: float = 1e-12, maxiter: int = 200
    ) -> None:
        super().__init__(None, False)
        self.block_size = as_int("block_size", block_size, minimum=1)
        self.sigma = _sigma(sigma)
        self.rtol = as_nonnegative_float("rtol", rtol)
        self.maxiter = as_int("maxiter", maxiter, minimum=1)

    r = renamed_field("r", "block_size", "KSupport")

    def __call__(self, x: np.ndarray) -> float:
        return self.sigma * float(np.sqrt(ksupport_norm_sq(x, self.block_size)))

    def _squared(self, x: np.ndarray, beta: float) -> tuple[np.ndarray, float]:
        a = prox_ksupport_sq(x, self.block_size, beta).values
        return a, beta * float(np.sqrt(ksupport_norm_sq(a, self.block_size)))

    def prox(self, x: np.ndarray, tau: float) -> np.ndarray:
        c = _scalar_tau(tau) * self.sigma
        x = np.asarray(x)
        if c == 0.0:
            return np.array(x, dtype=np.float64 if x.dtype != np.float32 else np.float32)
        if dual_ksupport_norm(x, self.block_size) <= c:
            return np.zeros(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64)
        # bracket: phi(lo) < c <= phi(hi); start from the l2 estimate beta ||x||/(1 + beta) = c
        norm = float(np.sqrt(ksupport_norm_sq(x, self.block_size)))
        lo, phi_lo = 0.0, 0.0  # phi(0) = 0
        hi = c / max(norm - c, 1e-300 * norm) if norm > c else 1.0
        a_hi, phi_hi = self._squared(x, hi)
        for _ in range(self.maxiter):
            if phi_hi >= c:
                break
            lo, phi_lo = hi, phi_hi
            hi *= 4.0
            a_hi, phi_hi = self._squared(x, hi)
        best_a, best_gap = a_hi, abs(phi_hi - c)
        f_lo, f_hi, last = phi_lo - c, phi_hi - c, 0
        for _ in range(self.maxiter):
            if best_gap <= self.rtol * c or hi - lo <= 1e-15 * hi:
                break
            beta = hi - f_hi * (hi - lo) / (f_hi - f_lo)  # regula falsi
            if not (lo < beta < hi):
                beta = 0.5 * (lo + hi)
            a, phi = self._squared(x, beta)
            if abs(phi - c) < best_gap:
                best_a, best_gap = a, abs(phi - c)
            # Illinois: an end kept twice in a row has its value halved, so the bracket shrinks
            # from both sides
            if phi < c:
                lo, f_lo = beta, phi - c
                if last == -1:
                    f_hi /= 2.0
                last = -1
            else:
                hi, f_hi = beta, phi - c
                if last == 1:
                    f_lo /= 2.0
                last = 1
        return best_a

"""Exact deterministic objectives of dropout-style training (Lemmas 1 and 10, corrected Theorem 13).

For a mask scheme applied to the hidden units of ``Y ~ U V^T X`` (X: b x N, Y: a x N, U: a x d,
V: b x d), the expectation of the stochastic loss over the masks is

    E ||Y - U diag(mu)^-1 diag(z) V^T X||_F^2 = ||Y - U V^T X||_F^2 + <C-bar, U^T U (.) V^T X X^T V>

(Lemma 10, eqs. 16-18; Lemma 1 / eq. 5 for DropBlock, eq. 2 for Dropout). For DropConnect (mask on
the entries of V) the exact identity is

    ||Y - U V^T X||^2 + beta sum_i ||u_i||^2 sum_j V_ji^2 ||x_j||^2,

not the Dropout form printed as Theorem 13 / Corollary 14 of the paper (see ``DropConnect``).

Everything is computed from the data moments X X^T, Y X^T and ||Y||^2
(:func:`structdrop.moments.data_moments`, one O((a + b/2) b N) BLAS pass), after which one
objective costs nothing that grows with N: O(b^2 d + a b d) for Dropout/DropConnect, plus
O((a + b) r d) for DropBlock with blocks of r and O((a + b) r d) for overlapping DropBlock (its
C-bar is banded with half-width r - 1).

:class:`~structdrop.moments.DataMoments` and :func:`~structdrop.moments.data_moments` live in
:mod:`structdrop.moments`; this module re-exports the very same objects, because code written for
0.x imports them from here (``from structdrop.objectives import DataMoments``). New code imports
them from ``structdrop`` or ``structdrop.moments``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._objective_terms import ObjectiveTerms, _check_factors, _terms, inputs_before_targets
from ._validation import as_float_array
from .moments import DataMoments, data_moments  # noqa: F401  (re-exported for 0.x imports, see above)
from .schemes import DropConnect, MaskScheme

__all__ = [
    "ObjectiveTerms",
    "dropconnect_paper_approx_terms",
    "generalized_objective",
    "objective_terms",
]


def _check_moments(moments: object) -> DataMoments:
    if not isinstance(moments, DataMoments):
        raise TypeError(
            "moments must be a DataMoments (from structdrop.data_moments), "
            f"got {type(moments).__name__}"
        )
    moments.check_semidefinite()
    return moments


def _check_scheme(scheme: object) -> MaskScheme:
    if not isinstance(scheme, MaskScheme):
        raise TypeError(
            f"scheme must be a structdrop.schemes.MaskScheme, got {type(scheme).__name__}"
        )
    return scheme


def objective_terms(
    scheme: MaskScheme, U: object, V: object, moments: DataMoments
) -> ObjectiveTerms:
    """Exact deterministic objective of ``scheme`` at (U, V) from cached data moments, in C++.

    E_z ||Y - U diag(mu)^-1 diag(z) V^T X||^2 = fit + regulariser with the regulariser of
    eq. 2 (Dropout), Lemma 1 / eq. 5 (DropBlock), Lemma 10 / eq. 18 with the exact banded C-bar
    (overlapping DropBlock), or the corrected DropConnect identity (not Theorem 13 as printed).
    The cost does not depend on N. When ``moments`` has no targets, ``fit`` and ``objective`` are
    NaN.

    The fit term is evaluated as ||Y||^2 - 2 <Y X^T, W> + <W X X^T, W> (W = U V^T), which loses
    relative accuracy when the residual is tiny compared with ||Y||^2 (it is clamped at 0).

    Args:
        scheme: a :class:`structdrop.schemes.MaskScheme`.
        U: a x d output weights. V: b x d input weights (float64; C-ordered U/V are copied once,
            O((a + b) d)).
        moments: :func:`data_moments` of X (and Y).

    Returns:
        An :class:`ObjectiveTerms` (fit, regularizer, objective).

    Raises:
        TypeError: ``scheme`` not a MaskScheme, ``moments`` not a DataMoments, or non-numeric U/V.
        ValueError: U, V inconsistent with each other or the moments, NaN/inf entries, a scheme
            that does not apply at width d, a gram that is not positive semidefinite, or an
            objective that overflows float64.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> moments = sd.data_moments(np.eye(2, 3), np.ones((1, 3)))
        >>> sd.objective_terms(sd.Dropout(0.5), np.ones((1, 2)), np.eye(2), moments)
        ObjectiveTerms(fit=1.0, regularizer=2.0, objective=3.0)
    """
    moments = _check_moments(moments)
    u, v = _check_factors(U, V, moments, need_targets=moments.cross is not None)
    return _terms(_check_scheme(scheme), u, v, moments, paper=False)


def dropconnect_paper_approx_terms(
    scheme: MaskScheme, U: object, V: object, moments: DataMoments
) -> ObjectiveTerms:
    """The DropConnect objective AS PRINTED in the paper (Theorem 13 / Corollary 14): approximate.

    Regulariser beta sum_i ||u_i||^2 ||X^T v_i||^2, the Dropout form. It equals the exact
    expectation (:func:`objective_terms` with a DropConnect scheme:
    beta sum_i ||u_i||^2 sum_j V_ji^2 ||x_j||^2) only when X X^T is diagonal; otherwise it is off
    (by several percent on random data). Provided to plot the difference.

    Returns:
        An :class:`ObjectiveTerms` with the printed regulariser.

    Raises:
        TypeError: ``scheme`` not a DropConnect, ``moments`` not a DataMoments.
        ValueError: as :func:`objective_terms`.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> moments = sd.data_moments(np.ones((2, 1)), np.full((1, 1), 2.0))
        >>> terms = sd.dropconnect_paper_approx_terms(
        ...     sd.DropConnect(0.5), np.ones((1, 1)), np.ones((2, 1)), moments)
        >>> terms.regularizer, terms.objective
        (4.0, 4.0)
    """
    if not isinstance(scheme, DropConnect):
        raise TypeError(f"scheme must be a DropConnect, got {type(scheme).__name__}")
    moments = _check_moments(moments)
    u, v = _check_factors(U, V, moments, need_targets=moments.cross is not None)
    return _terms(scheme, u, v, moments, paper=True)


def _features_agree(shapes: Mapping[str, tuple[int, int]]) -> bool:
    g, y, u = (shapes[name] for name in "GYU")
    return g[1] == y[1] and u[0] == y[0] and u[1] == g[0]


@inputs_before_targets("generalized_objective", ("G", "Y", "U"), ("Y", "U", "G"), _features_agree)
def generalized_objective(
    G: object, Y: object, U: object, mean: object, covariance: object
) -> ObjectiveTerms:
    """Lemma 10 (eqs. 15-18) for any mask distribution on the d hidden units, in NumPy.

    E_z ||Y - U diag(mu)^-1 diag(z) G||_F^2 = ||Y - U G||_F^2 + <C-bar, U^T U (.) G G^T>,
    C-bar = diag(mu)^-1 C diag(mu)^-1 (eq. 16), with G = V^T X for a shallow network or the
    features g_Gamma(X) of a deep one.

    Args:
        G: d x N features (the inputs of the last layer). Y: a x N targets. U: a x d.
        mean: mu, the d mask means (no zero entry).
        covariance: C, the d x d mask covariance (symmetric).

    Inputs come before targets (1.0). The order before 1.0, ``(Y, U, G, ...)``, still works where
    the shapes prove it (FutureWarning); shapes that fit both orders (a = d = N) need keywords.

    Cost O(a d N + d^2 N); allocates U G (a x N) and G G^T (d x d).

    Returns:
        An :class:`ObjectiveTerms` (fit, regularizer, objective).

    Raises:
        ValueError: inconsistent shapes, a zero mean, an asymmetric covariance, NaN/inf entries,
            or an objective that overflows float64.
        TypeError: non-numeric arrays, or positional arrays whose shapes fit both orders.

    Example:
        >>> import numpy as np, structdrop as sd
        >>> G, Y, U = np.eye(2), np.ones((1, 2)), np.ones((1, 2))
        >>> s = sd.Dropout(0.5)
        >>> sd.generalized_objective(G, Y, U, s.mask_mean(2), s.mask_covariance(2))
        ObjectiveTerms(fit=0.0, regularizer=2.0, objective=2.0)
    """
    y = as_float_array("Y", Y, ndim=2)
    u = as_float_array("U", U, ndim=2)
    g = as_float_array("G", G, ndim=2)
    mu = as_float_array("mean", mean, ndim=1)
    cov = as_float_array("covariance", covariance, ndim=2)
    a, d = u.shape
    if g.shape[0] != d:
        raise ValueError(f"G must have d = {d} rows (the columns of U), got G {g.shape}")
    if y.shape != (a, g.shape[1]):
        raise ValueError(f"Y must have shape (a, N) = {(a, g.shape[1])}, got {y.shape}")
    if mu.shape != (d,):
        raise ValueError(f"mean must have d = {d} entries, got shape {mu.shape}")
    if cov.shape != (d, d):
        raise ValueError(f"covariance must be d x d = {(d, d)}, got {cov.shape}")
    if np.any(mu == 0):
        raise ValueError("mean must have no zero entry (units are rescaled by 1/mean)")
    if not np.allclose(cov, cov.T, rtol=1e-12, atol=1e-14 * max(1.0, float(np.abs(cov).max()))):
        raise ValueError("covariance must be symmetric")
    fit = float(np.sum((y - u @ g) ** 2))
    cbar = cov / np.outer(mu, mu)
    reg = float(np.sum(cbar * (u.T @ u) * (g @ g.T)))
    if not (np.isfinite(fit) and np.isfinite(reg) and np.isfinite(fit + reg)):
        raise ValueError("Y, U, G or mean are too large: the objective overflows float64")
    return ObjectiveTerms(fit=fit, regularizer=reg, objective=fit + reg)

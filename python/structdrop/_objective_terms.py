"""The exact objective's terms from data moments: the layer below ``schemes`` and ``objectives``.

Both the scheme methods (``MaskScheme.objective_terms`` and friends, in :mod:`structdrop.schemes`)
and the moment-based public functions (:mod:`structdrop.objectives`) evaluate Lemma 10 / eq. 17
through the same C++ kernel, with the same checks of U and V. Those shared pieces live here, so
that the imports form a chain (schemes -> this module; objectives -> schemes and this module)
instead of a cycle. This module never imports :mod:`structdrop.schemes`: a scheme reaches it as any
object with ``check_width(d)`` and ``_core_params()``; the public entry points check the type first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import _core
from ._validation import as_float_array
from .moments import DataMoments


class _CoreScheme(Protocol):
    """What the kernel needs of a mask scheme (every ``structdrop.schemes.MaskScheme`` has it)."""

    def check_width(self, d: object) -> int: ...

    def _core_params(self) -> _core.SchemeParams: ...


@dataclass(frozen=True)
class ObjectiveTerms:
    """The two terms of a deterministic objective and their sum.

    Attributes:
        fit: ||Y - U V^T X||_F^2 (or ||Y - U G||_F^2).
        regularizer: the scheme's exact regulariser, E[loss] - fit.
        objective: fit + regularizer, the exact expectation of the stochastic loss over the masks.
    """

    fit: float
    regularizer: float
    objective: float


def _layout_for_core(array: np.ndarray) -> np.ndarray:
    # The core reads C- or Fortran-contiguous arrays in place; anything else is copied here.
    if array.flags.c_contiguous or array.flags.f_contiguous:
        return array
    return np.ascontiguousarray(array)


def _check_factors(
    U: object, V: object, moments: DataMoments, need_targets: bool
) -> tuple[np.ndarray, np.ndarray]:
    u = _layout_for_core(as_float_array("U", U, ndim=2))
    v = _layout_for_core(as_float_array("V", V, ndim=2))
    if u.shape[1] != v.shape[1]:
        raise ValueError(
            f"U and V must have the same number of columns d, got U {u.shape} and V {v.shape}"
        )
    b = moments.in_features
    if v.shape[0] != b:
        raise ValueError(f"V must have b = {b} rows (the rows of X), got V {v.shape}")
    if need_targets:
        if moments.cross is None:
            raise ValueError("moments were computed without targets Y; call data_moments(X, Y)")
        a = moments.cross.shape[0]
        if u.shape[0] != a:
            raise ValueError(f"U must have a = {a} rows (the rows of Y), got U {u.shape}")
    return u, v


def _scheme_params(scheme: _CoreScheme, d: int) -> _core.SchemeParams:
    scheme.check_width(d)
    return scheme._core_params()


def _terms(
    scheme: _CoreScheme, u: np.ndarray, v: np.ndarray, moments: DataMoments, *, paper: bool
) -> ObjectiveTerms:
    params = _scheme_params(scheme, u.shape[1])
    if moments.cross is None:  # regulariser only: the fit term is meaningless without Y
        cross = np.zeros((u.shape[0], moments.in_features))
        _, reg = _core.objective_terms(params, moments.gram, cross, 0.0, u, v, paper)
        if not np.isfinite(reg):
            raise ValueError("U, V are too large for the data: the regulariser overflows float64")
        return ObjectiveTerms(fit=float("nan"), regularizer=float(reg), objective=float("nan"))
    fit, reg = _core.objective_terms(
        params, moments.gram, moments.cross, moments.y_sq_norm, u, v, paper
    )
    if not (np.isfinite(fit) and np.isfinite(reg) and np.isfinite(fit + reg)):
        raise ValueError("U, V are too large for the data: the objective overflows float64")
    return ObjectiveTerms(fit=float(fit), regularizer=float(reg), objective=float(fit + reg))

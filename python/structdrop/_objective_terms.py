"""The exact objective's terms from data moments: the layer below ``schemes`` and ``objectives``.

Both the scheme methods (``MaskScheme.objective_terms`` and friends, in :mod:`structdrop.schemes`)
and the moment-based public functions (:mod:`structdrop.objectives`) evaluate Lemma 10 / eq. 17
through the same C++ kernel, with the same checks of U and V. Those shared pieces live here, so
that the imports form a chain (schemes -> this module; objectives -> schemes and this module)
instead of a cycle. This module never imports :mod:`structdrop.schemes`: a scheme reaches it as any
object with ``check_width(width)`` and ``_core_params()``; the public entry points check the type
first.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from . import _core
from ._migration import choose_argument_order, warn_old_spelling
from ._validation import as_float_array
from .moments import DataMoments

F = TypeVar("F", bound=Callable[..., Any])


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

    Example:
        >>> import numpy as np, structdrop as sd
        >>> moments = sd.data_moments(np.eye(1))
        >>> sd.objective_terms(sd.NoDropout(), np.eye(1), np.eye(1), moments).regularizer
        0.0
    """

    fit: float
    regularizer: float
    objective: float


def matrix_shape(value: object) -> tuple[int, int] | None:
    """The shape of a 2-D array-like argument, or None (any other rank, or not array-like)."""
    if isinstance(value, np.ndarray):  # the common case, without np.shape's dispatch
        shape: tuple[int, ...] = value.shape
    else:
        try:
            shape = np.shape(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):  # ragged nested lists
            return None
    return (int(shape[0]), int(shape[1])) if len(shape) == 2 else None


def inputs_before_targets(
    function_name: str,
    new_names: Sequence[str],
    old_names: Sequence[str],
    shapes_agree: Callable[[Mapping[str, tuple[int, int]]], bool],
) -> Callable[[F], F]:
    """Decorator: the leading array parameters ``new_names`` (inputs first, 1.0) were taken in the
    order ``old_names`` (targets first) before 1.0.

    All arrays by position: the order the shapes prove is taken (the old one with a FutureWarning),
    and shapes that fit both orders are refused (``choose_argument_order``). Some by keyword: a
    call whose positional arrays clash with its keywords only in the new order is an old call
    (a FutureWarning). ``shapes_agree`` gets the 2-D shapes by name.
    """
    count = len(new_names)

    def decorate(function: F) -> F:
        offset = 1 if next(iter(inspect.signature(function).parameters)) == "self" else 0

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            head, arrays, rest = (
                args[:offset],
                args[offset : offset + count],
                args[offset + count :],
            )
            if len(arrays) == count:
                # each array's shape once, for both orders that choose_argument_order tries
                by_id = {id(array): matrix_shape(array) for array in arrays}

                def agree(named: Mapping[str, Any]) -> bool:
                    shapes = {name: by_id[id(value)] for name, value in named.items()}
                    return None not in shapes.values() and shapes_agree(shapes)  # type: ignore[arg-type]

                named = choose_argument_order(function_name, arrays, new_names, old_names, agree)
                ordered = tuple(named[name] for name in new_names)
                return function(*head, *ordered, *rest, **kwargs)
            clashes_new = any(name in kwargs for name in new_names[: len(arrays)])
            clashes_old = any(name in kwargs for name in old_names[: len(arrays)])
            if arrays and clashes_new and not clashes_old:
                warn_old_spelling(
                    f"{function_name}({', '.join(old_names)}) (the order before 1.0)",
                    f"{function_name}({', '.join(f'{n}={n}' for n in new_names)})",
                )
                kwargs.update(zip(old_names, arrays))
                return function(*head, **kwargs)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def factors_agree(shapes: Mapping[str, tuple[int, int]]) -> bool:
    """Whether X (b x N), Y (a x N), U (a x d) and V (b x d) have consistent shapes."""
    x, y, u, v = (shapes[name] for name in "XYUV")
    return x[1] == y[1] and u[0] == y[0] and v[0] == x[0] and u[1] == v[1]


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

"""Argument checks shared by the public API.

Every public function validates here, before anything reaches the compiled core, so that bad
input raises a ValueError/TypeError naming the argument instead of crashing or returning noise.
"""

from __future__ import annotations

import numbers
import operator
import warnings
from typing import Literal, SupportsIndex, overload

import numpy as np
from numpy.typing import DTypeLike

from ._migration import _caller_stacklevel

__all__ = [
    "MissingDependency",
    "as_float_array",
    "as_real_array",
    "check_real_dtype",
    "as_int",
    "as_threads",
    "as_nonnegative_float",
    "as_probability",
    "as_strength",
]


def check_real_dtype(name: str, dtype: DTypeLike) -> None:
    """Raise TypeError unless ``dtype`` is a real numeric (float, integer or boolean) dtype."""
    kind = np.dtype(dtype).kind
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {np.dtype(dtype)}")
    if kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array, got dtype {np.dtype(dtype)}")


def as_real_array(
    name: str, value: object, *, ndim: int | tuple[int, ...], allow_empty: bool = False
) -> np.ndarray:
    """Return ``value`` as a real numeric ndarray of the given dimension(s), WITHOUT converting its
    dtype and without a finiteness check (for callers that convert and check chunk by chunk)."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}")
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be convertible to a numeric array: {exc}") from None
    check_real_dtype(name, array.dtype)
    dims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if array.ndim not in dims:
        expected = " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name} must be {expected}, got an array of shape {array.shape}")
    if not allow_empty and array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return array


def as_float_array(
    name: str,
    value: object,
    *,
    ndim: int | tuple[int, ...],
    allow_empty: bool = False,
    dtype: type = np.float64,
    contiguous: bool = False,
    keep_float32: bool = False,
    check_finite: bool = True,
) -> np.ndarray:
    """Return ``value`` as a finite float array of the given dimension(s).

    Integer and boolean arrays are converted; complex, object and string arrays are rejected.
    No copy is made when ``value`` already is a float64 array (a C-contiguous copy only when
    ``contiguous`` is requested and the layout is not contiguous). ``keep_float32`` leaves float32
    input as float32 (for kernels that take it); ``check_finite=False`` leaves the NaN/inf check to
    a compiled kernel that fuses it with its own first pass (it must raise then).
    """
    array = as_real_array(name, value, ndim=ndim, allow_empty=allow_empty)
    if keep_float32 and array.dtype == np.float32:
        dtype = np.float32
    if array.dtype != dtype:
        array = array.astype(dtype)
    if contiguous:
        array = np.ascontiguousarray(array)
    if check_finite and array.size and not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def as_int(name: str, value: object, *, minimum: int | None = None) -> int:
    """Return ``value`` as a Python int (bools and non-integral numbers are rejected)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got a bool")
    if isinstance(value, numbers.Integral):
        result = int(value)
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        result = int(value)
    else:
        try:
            if not isinstance(value, SupportsIndex):
                raise TypeError
            result = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and result < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {result}")
    return result


def as_threads(value: object, name: str = "threads") -> int | None:
    """Validate the ``threads`` argument of a public function.

    The one meaning of ``threads`` in every public function that takes it:

    - ``None`` (the default): every core (with a Dask ``client``: one thread per task, since each
      worker already runs one task per core it was given);
    - a positive integer: that many worker threads.

    Results never depend on it. Anything else is an error naming the argument: a TypeError for a
    bool, a float or another type, a ValueError for a negative count. ``threads=0``, the spelling of
    "every core" in ``train_many`` and ``prox_ksupport_sq_batch`` before 1.0, still means every core
    but emits a FutureWarning that says to write ``threads=None``.

    Returns:
        None for every core, else the number of threads (>= 1).

    Raises:
        TypeError: ``threads`` is not None nor an integer (bools and floats included).
        ValueError: ``threads`` is negative.

    Example:
        >>> as_threads(None), as_threads(4)
        (None, 4)
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be None (every core) or a positive integer, got {value!r}")
    count = int(value)
    if count == 0:
        warnings.warn(
            f"{name}=0 for every core is deprecated and will be an error: write {name}=None",
            FutureWarning,
            stacklevel=_caller_stacklevel(),  # the user's line, past any wrapper of the package
        )
        return None
    if count < 0:
        raise ValueError(f"{name} must be None (every core) or a positive integer, got {count}")
    return count


def _as_real(name: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got a bool")
    if isinstance(value, numbers.Real):
        result = float(value)
    elif isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
        result = float(value.item())
    else:
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not np.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    return result


def as_nonnegative_float(name: str, value: object) -> float:
    """Return ``value`` as a finite float >= 0."""
    result = _as_real(name, value)
    if result < 0:
        raise ValueError(f"{name} must be >= 0, got {result}")
    return result


def as_probability(
    name: str, value: object, *, low_open: bool = True, high_open: bool = False
) -> float:
    """Return ``value`` as a float in (0, 1] (the default), [0, 1), ... as the flags say."""
    result = _as_real(name, value)
    low_ok = result > 0 if low_open else result >= 0
    high_ok = result < 1 if high_open else result <= 1
    if not (low_ok and high_ok):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{name} must lie in {interval}, got {result}")
    return result


class MissingDependency(RuntimeError):
    """An optional dependency (matplotlib, torch, dask...) is not installed; the message says what
    to pip install. Raised by the figures and the command line (which prints it as one line and
    exits with code 2).

    Example:
        >>> from structdrop.figures import MissingDependency
        >>> issubclass(MissingDependency, RuntimeError)
        True
    """


@overload
def as_strength(
    theta_bar: object,
    beta: object,
    *,
    names: tuple[str, str] = ...,
    many: Literal[False] = ...,
) -> float: ...


@overload
def as_strength(
    theta_bar: object, beta: object, *, names: tuple[str, str] = ..., many: Literal[True]
) -> np.ndarray: ...


def as_strength(
    theta_bar: object,
    beta: object,
    *,
    names: tuple[str, str] = ("theta_bar", "beta"),
    many: bool = False,
) -> float | np.ndarray:
    """The strength of a global-minimum solve, given as ``theta_bar=`` or ``beta=`` (exactly one).

    theta_bar in (0, 1] is the product-space retain probability and beta >= 0 (finite) the
    regularisation strength; beta = (1 - theta_bar)/theta_bar. ``many=True`` takes a non-empty 1-D
    sequence of either (the sweeps' ``theta_bars=`` / ``betas=``; ``names`` gives their names).

    Returns:
        beta as a float, or a float64 array of them with ``many``.

    Raises:
        TypeError: neither or both of the two were given, or a value is not a real number.
        ValueError: theta_bar outside (0, 1] (or so small that beta overflows), beta negative or
            not finite, an empty or not 1-D sequence with ``many``.

    Example:
        >>> as_strength(0.5, None), as_strength(None, 1.0)
        (1.0, 1.0)
    """
    theta_name, beta_name = names
    if (theta_bar is None) == (beta is None):
        given = "both" if theta_bar is not None else "neither"
        raise TypeError(
            f"give the strength as exactly one of {theta_name}= or {beta_name}= "
            f"({beta_name} = (1 - {theta_name})/{theta_name}), got {given}"
        )
    if not many:
        if beta is not None:
            return as_nonnegative_float(beta_name, beta)
        tb = as_probability(theta_name, theta_bar)
        result = (1.0 - tb) / tb
        if not np.isfinite(result):
            raise ValueError(
                f"{theta_name} is too small: {beta_name} = (1 - {theta_name})/{theta_name} "
                f"overflows, got {theta_bar!r}"
            )
        return result
    name, value = (beta_name, beta) if beta is not None else (theta_name, theta_bar)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(value).__name__}")
    try:
        values = np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of numbers: {exc}") from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence")
    if beta is not None:
        if not np.all(np.isfinite(values) & (values >= 0)):
            raise ValueError(f"{name} must all be finite and >= 0")
        return values
    if not np.all((values > 0) & (values <= 1)):
        raise ValueError(f"{name} must all lie in (0, 1]")
    with np.errstate(over="ignore", divide="ignore"):
        betas = (1.0 - values) / values
    if not np.isfinite(betas).all():
        raise ValueError(
            f"{name} too small: {beta_name} = (1 - {theta_name})/{theta_name} overflows"
        )
    return betas

"""Value equality for the result dataclasses (arrays inside), shared by every public result type.

A dataclass's generated ``__eq__`` compares its fields as a tuple, which raises for NumPy arrays
("the truth value of an array ... is ambiguous") and for tensors. The result types inherit
:class:`ResultEquality` instead and are declared ``@dataclass(frozen=True, eq=False)`` so that the
generated method does not replace it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import numpy as np

__all__ = ["ResultEquality", "fields_equal", "values_equal"]


def _arrays_equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if np.array_equal(a, b):  # one pass in the common case; the NaN-aware test costs three
        return True
    # NaN equals NaN at the same position, so that a copy always equals its original
    return a.dtype.kind in "fc" and bool(np.array_equal(a, b, equal_nan=True))


def _tensors_equal(a: Any, b: Any) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    same = a == b
    if a.is_floating_point() or a.is_complex():
        same = same | (a.isnan() & b.isnan())
    return bool(same.all())


def _is_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    return torch is not None and isinstance(value, torch.Tensor)


def values_equal(a: object, b: object) -> bool:
    """Exact equality of two field values, recursing into containers and dataclasses.

    Arrays (NumPy, and torch tensors) are equal when their shapes, dtypes (and devices) are equal
    and every element is; NaN equals NaN in the same position, also for a float field, so that a
    copy or a pickled round trip of a result always equals the original. -0.0 equals 0.0.
    Tuples, lists and dicts compare element by element, nested dataclasses field by field.
    """
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and _arrays_equal(a, b)
    if _is_tensor(a) or _is_tensor(b):
        return _is_tensor(a) and _is_tensor(b) and _tensors_equal(a, b)
    if type(a) is not type(b):
        # 1 == 1.0 and np.float64(1) == 1.0 stay equal; containers of other types do not
        if isinstance(a, (tuple, list, dict)) or isinstance(b, (tuple, list, dict)):
            return False
        return bool(a == b) or _both_nan(a, b)
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list))
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return fields_equal(a, b)
    return bool(a == b) or _both_nan(a, b)


def _both_nan(a: object, b: object) -> bool:
    try:
        return math.isnan(a) and math.isnan(b)  # type: ignore[arg-type]
    except (TypeError, OverflowError):  # not a number, or an int too large for a float
        return False


def fields_equal(a: object, b: object) -> bool:
    """Every field with ``compare=True`` of two dataclass instances of the same type is equal."""
    return all(
        values_equal(getattr(a, f.name), getattr(b, f.name))
        for f in dataclasses.fields(a)  # type: ignore[arg-type]
        if f.compare
    )


class ResultEquality:
    """Base of the result dataclasses: ``==`` compares every field exactly (see
    :func:`values_equal`: arrays by shape, dtype and values, NaN equal to NaN), never raising.

    Results are unhashable: they hold mutable arrays, whose contents a hash could not follow.
    Subclasses must be declared with ``eq=False`` (else the dataclass's own ``__eq__`` wins).
    """

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return fields_equal(self, other)

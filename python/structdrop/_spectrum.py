"""Magnitudes sorted descending, from a vector or from a matrix's singular values."""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array


def sorted_magnitudes(name: str, x: object) -> np.ndarray:
    """|x| sorted descending (1-D input) or the singular values (2-D input), as a new float64 array.

    1-D input is copied once (the sort needs its own array); a 2-D input is reduced to its
    singular values by LAPACK through NumPy.
    """
    array = as_float_array(name, x, ndim=(1, 2))
    if array.ndim == 2:
        return np.linalg.svd(array, compute_uv=False)  # already descending and >= 0
    magnitudes = np.abs(array)
    magnitudes.sort()
    return np.ascontiguousarray(magnitudes[::-1])


def power_of_two_scale(values: np.ndarray) -> float:
    """A power of two close to max(values): dividing by it is exact and keeps squares finite."""
    top = float(values[0]) if values.size else 0.0
    if top == 0.0:
        return 1.0
    _, exponent = np.frexp(top)
    return float(np.ldexp(1.0, int(exponent)))

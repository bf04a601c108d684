"""Exact power-of-two rescaling of magnitudes or singular values before squaring them."""

from __future__ import annotations

import numpy as np


def power_of_two_scale(values: np.ndarray) -> float:
    """A power of two close to max(values): dividing by it is exact and keeps squares finite."""
    top = float(values[0]) if values.size else 0.0
    if top == 0.0:
        return 1.0
    _, exponent = np.frexp(top)
    return float(np.ldexp(1.0, int(exponent)))

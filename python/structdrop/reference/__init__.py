"""Plain NumPy reference implementations: the test oracle and the benchmark baseline.

Every kernel of structdrop has a NumPy counterpart here, written separately from the C++ code.
They favour clarity over speed and do little input validation.
"""

from .ksupport import (
    beta_for_width,
    dropblock_global_min,
    ksupport_norm_sq,
    ksupport_split,
    prox_ksupport_sq,
    theta_for_width,
)

__all__ = [
    "beta_for_width",
    "dropblock_global_min",
    "ksupport_norm_sq",
    "ksupport_split",
    "prox_ksupport_sq",
    "theta_for_width",
]

# --- masked SGD, Algorithm 1 (issue 4; the rest of reference.training stays in its module) ---
from .training import train  # noqa: E402

__all__ += ["train"]

# issue 3: deterministic objectives (direct formulas over all N samples)
from . import objectives  # noqa: E402  (structdrop.reference.objectives.objective_terms, ...)

"""Plain NumPy reference implementations: the test oracle and the benchmark baseline.

Every kernel of structdrop has a NumPy counterpart here, written separately from the C++ code.
They favour clarity over speed and do little input validation.

- :mod:`structdrop.reference.ksupport`: the k-support norm, its prox (sweep and literal search),
  the global minimum and the width-scaling formulas (re-exported here);
- :mod:`structdrop.reference.objectives`: deterministic objectives by direct formulas over all N
  samples (``objective_terms``, ``overlapping_dropblock_stats``, ``dropconnect_paper_regularizer``);
- :mod:`structdrop.reference.training`: Algorithm 1 as a plain NumPy loop (``train``, re-exported).
"""

from . import objectives
from .ksupport import (
    beta_for_width,
    dropblock_global_min,
    ksupport_norm_sq,
    ksupport_split,
    prox_ksupport_sq,
    theta_for_width,
)
from .training import train

__all__ = [
    "beta_for_width",
    "dropblock_global_min",
    "ksupport_norm_sq",
    "ksupport_split",
    "objectives",
    "prox_ksupport_sq",
    "theta_for_width",
    "train",
]

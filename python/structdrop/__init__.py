"""structdrop: the exact mathematics of structured dropout.

Exact deterministic objectives of Dropout, DropBlock and DropConnect training, the spectral
k-support norm they induce, the closed-form global minimum (corrected Theorems 6 and 7 of
Pal, Lane, Vidal, Haeffele, CVPR 2020) and a fast masked-SGD simulator. The manual is in docs/
(start at docs/index.md).
"""

from __future__ import annotations

# --- closed-form core: k-support norm, prox, global minimum, width scaling ---
from .datasets import SyntheticProblem, paper_synthetic
from .factorize import (
    BalancedFactorization,
    WidthGap,
    balanced_factorization,
    balanced_factors,
    min_exact_width,
    width_gap,
)
from .global_min import (
    ConditioningWarning,
    GlobalMin,
    dropblock_global_min,
    global_min_from_moments,
)
from .ksupport import (
    ProxBatchResult,
    ProxResult,
    ksupport_norm_sq,
    ksupport_split,
    prox_ksupport_sq,
    prox_ksupport_sq_batch,
)

# --- exact deterministic objectives and mask schemes ---
from .moments import DataMoments, data_moments, stream_moments
from .objectives import (
    ObjectiveTerms,
    dropconnect_paper_approx_terms,
    generalized_objective,
    objective_terms,
)
from .schemes import DropBlock, DropConnect, Dropout, MaskScheme, NoDropout, OverlappingDropBlock

# --- many settings at once ---
from .sweep import SweepResult, WidthSweepResult, sweep_global_min, width_sweep

# --- masked-SGD training, Algorithm 1 ---
from .training import TrainingDiverged, TrainResult, train, train_many
from .width import beta_for_width, theta_for_width

# The one version source: pyproject.toml reads it (scikit-build metadata.version, a regex that
# needs the assignment on one line).
__version__ = "0.1.0"

__all__ = [
    # closed form: k-support norm, prox, global minimum, width scaling, sweeps
    "BalancedFactorization",
    "ConditioningWarning",
    "GlobalMin",
    "ProxBatchResult",
    "ProxResult",
    "SweepResult",
    "SyntheticProblem",
    "WidthGap",
    "WidthSweepResult",
    "balanced_factorization",
    "balanced_factors",
    "beta_for_width",
    "dropblock_global_min",
    "global_min_from_moments",
    "ksupport_norm_sq",
    "ksupport_split",
    "min_exact_width",
    "paper_synthetic",
    "prox_ksupport_sq",
    "prox_ksupport_sq_batch",
    "sweep_global_min",
    "theta_for_width",
    "width_gap",
    "width_sweep",
    # exact objectives and mask schemes
    "DataMoments",
    "DropBlock",
    "DropConnect",
    "Dropout",
    "MaskScheme",
    "NoDropout",
    "ObjectiveTerms",
    "OverlappingDropBlock",
    "data_moments",
    "dropconnect_paper_approx_terms",
    "generalized_objective",
    "objective_terms",
    # data moments: BLAS, merged, streamed, memory maps, dask
    "stream_moments",
    # masked SGD
    "TrainResult",
    "TrainingDiverged",
    "train",
    "train_many",
]

"""structdrop.torch: the PyTorch path of structdrop (optional; ``pip install structdrop[torch]``).

- Layers: :class:`DropBlock1d`, :class:`OverlappingDropBlock1d`, :class:`DropConnectLinear`.
- Differentiable deterministic objectives (Lemma 1, Lemma 10, corrected Theorem 13):
  :func:`objective`, :func:`regularizer`, :func:`feature_objective`, :func:`generalized_objective`,
  and per-scheme regularisers.
- :func:`batched_train`: many independent runs of Algorithm 1 as batched tensors (CPU or CUDA).
- :func:`deep_experiment`: the deep-network experiment of Section 5.2 (Figure 3).
- :func:`feature_moments`: ``DataMoments`` of a feature extractor over a data loader, accumulated on
  the device and summed over ``torch.distributed`` processes.

``import structdrop`` never imports this package (nor torch).
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "structdrop.torch needs PyTorch: pip install 'structdrop[torch]' (or install torch first)"
    ) from exc

from ._schemes import SchemeSpec
from .batched import BatchedTrainResult, batched_train
from .deep import DeepExperimentResult, deep_experiment
from .layers import DropBlock1d, DropConnectLinear, OverlappingDropBlock1d
from .moments import feature_moments
from .objectives import (
    characteristic_matrix,
    dropblock_regularizer,
    dropconnect_regularizer,
    dropout_regularizer,
    feature_objective,
    generalized_objective,
    generalized_regularizer,
    objective,
    overlapping_dropblock_regularizer,
    regularizer,
    squared_error,
)

__all__ = [
    "BatchedTrainResult",
    "DeepExperimentResult",
    "DropBlock1d",
    "DropConnectLinear",
    "OverlappingDropBlock1d",
    "SchemeSpec",
    "batched_train",
    "characteristic_matrix",
    "deep_experiment",
    "dropblock_regularizer",
    "dropconnect_regularizer",
    "dropout_regularizer",
    "feature_moments",
    "feature_objective",
    "generalized_objective",
    "generalized_regularizer",
    "objective",
    "overlapping_dropblock_regularizer",
    "regularizer",
    "squared_error",
]

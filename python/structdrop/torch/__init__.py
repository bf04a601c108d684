"""structdrop.torch: the PyTorch path of structdrop (optional; ``pip install structdrop[torch]``).

- Layers: :class:`DropBlock1d` (the paper's blocks, or ``overlapping=True``),
  :class:`OverlappingDropBlock1d`, :class:`DropConnectLinear`; every layer takes its strength as
  ``p=`` (drop probability) or ``theta=`` (keep probability), by keyword.
- Feature maps: :class:`DropBlock2d`, :class:`DropBlock3d` (exact per-unit
  rescaling, ``mask_moments``), :func:`mask_statistics` (their drop rates next to torchvision's and
  timm's rules), and the exact conv-readout objective
  :func:`dropblock_conv_objective` / :func:`dropblock_conv_regularizer`.
- :func:`weight_dropout`: DropConnect on any module's weights (recurrent ones included);
  :func:`linear_weight_dropout_objective` its exact expected loss for a linear network.
- Drop-rate warm-up held in the layers' state: :class:`DropRateScheduler`, :func:`warmup_factor`.
- Differentiable deterministic objectives (Lemma 1, Lemma 10, corrected Theorem 13), inputs
  before targets and samples as columns (``objective(scheme, X, Y, U, V)``):
  :func:`objective`, :func:`regularizer`, :func:`feature_objective`, :func:`generalized_objective`,
  and per-scheme regularisers.
- :func:`batched_train`: many independent runs of Algorithm 1 as batched tensors (CPU or CUDA).
- :func:`deep_experiment`: the deep-network experiment of Section 5.2 (Figure 3).
- :func:`feature_moments`: ``DataMoments`` of a feature extractor over a data loader, accumulated on
  the device and summed over ``torch.distributed`` processes.
- :class:`BoundMonitor`: the exact dropout objective of your own network and its global-minimum
  bounds, evaluated during training (TensorBoard; Lightning through
  :mod:`structdrop.torch.lightning`).

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
from .conv_regularizer import dropblock_conv_objective, dropblock_conv_regularizer
from .deep import DeepExperimentResult, deep_experiment
from .dropblock_nd import DropBlock2d, DropBlock3d, MaskMoments
from .layers import DropBlock1d, DropConnectLinear, OverlappingDropBlock1d
from .mask_statistics import MaskStatistics, mask_statistics
from .moments import feature_moments
from .monitor import BoundMonitor, BoundRecord
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
from .schedules import DropRateScheduler, ScheduledDropRate, warmup_factor
from .weight_dropout import (
    WeightDropout,
    linear_weight_dropout_objective,
    redraw_weight_masks,
    weight_dropout,
)

__all__ = [
    "BatchedTrainResult",
    "BoundMonitor",
    "BoundRecord",
    "DeepExperimentResult",
    "DropBlock1d",
    "DropBlock2d",
    "DropBlock3d",
    "DropConnectLinear",
    "DropRateScheduler",
    "MaskMoments",
    "MaskStatistics",
    "OverlappingDropBlock1d",
    "ScheduledDropRate",
    "SchemeSpec",
    "WeightDropout",
    "batched_train",
    "characteristic_matrix",
    "deep_experiment",
    "dropblock_conv_objective",
    "dropblock_conv_regularizer",
    "dropblock_regularizer",
    "dropconnect_regularizer",
    "dropout_regularizer",
    "feature_moments",
    "feature_objective",
    "generalized_objective",
    "generalized_regularizer",
    "linear_weight_dropout_objective",
    "mask_statistics",
    "objective",
    "overlapping_dropblock_regularizer",
    "redraw_weight_masks",
    "regularizer",
    "squared_error",
    "warmup_factor",
    "weight_dropout",
]

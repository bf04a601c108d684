"""The exact expected loss of DropBlock on conv feature maps read out by a linear layer (Lemma 10).

A batch of feature maps ``F`` (N x C x spatial) is masked by a :class:`DropBlock2d` /
:class:`DropBlock3d` (``z / mu`` unit by unit), flattened and read out by ``y = W vec(.) + c``
(``W`` the a x (C prod(spatial)) weight of an ``nn.Linear``). Lemma 10 with the layer's
characteristic matrix gives, exactly,

    E ||Y - W (z/mu * F) - c||^2 = ||Y - W F - c||^2 + sum_n <C-bar, W^T W * f_n f_n^T>,

summed over the batch. C-bar over the C x U units is ``I_C kron C-bar_map`` for independent
channel masks and ``1 1^T kron C-bar_map`` for ``share_channels``; C-bar_map vanishes unless
``|u_i - v_i| < b_i`` on every axis. The regulariser is therefore evaluated offset by offset,
never forming a (C U) x (C U) matrix:

    independent:  sum_delta sum_{c,u} C-bar(u, u+delta) (sum_a W_acu W_ac(u+delta)) (sum_n F_ncu F_nc(u+delta))
    shared:       sum_delta sum_u C-bar(u, u+delta) sum_{n,a} P_nau P_na(u+delta),  P_nau = sum_c W_acu F_ncu

for the ``prod(2 min(b_i, n_i) - 1)`` offsets (half of them, by symmetry): O(offsets (a + N) C U)
time and O((a + N) C U) extra memory for independent masks, O(a N C U + offsets a N U) shared.
Everything is differentiable (in W, F, Y and the bias), so it can be used as a loss term
instead of, or next to, sampled masks.
"""

from __future__ import annotations

import itertools
import math

import torch

from .dropblock_nd import _DropBlockNd

__all__ = ["dropblock_conv_objective", "dropblock_conv_regularizer"]


def _check(layer: object, weight: torch.Tensor, features: torch.Tensor) -> tuple[int, ...]:
    if not isinstance(layer, _DropBlockNd):
        raise TypeError(f"layer must be a structdrop DropBlock2d or DropBlock3d, got {type(layer).__name__}")
    for name, value in (("weight", weight), ("features", features)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor")
    k = layer._k
    if features.dim() != k + 2:
        raise ValueError(f"features must be (N, C, {layer._spatial_names}) for {type(layer).__name__}, "
                         f"got shape {tuple(features.shape)}")
    if weight.dtype != features.dtype or weight.device != features.device:
        raise TypeError("weight and features must have the same dtype and device")
    d = math.prod(features.shape[1:])
    if weight.dim() != 2 or weight.shape[1] != d:
        raise ValueError(f"weight must be a x (C * prod(spatial)) = a x {d} (an nn.Linear weight on the "
                         f"flattened features), got shape {tuple(weight.shape)}")
    return layer._check_shape(tuple(features.shape[2:]))


def dropblock_conv_regularizer(layer: _DropBlockNd, weight: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``E ||W (z/mu * F)||^2 - ||W F||^2``: the exact regulariser of ``layer`` under a linear readout.

    Args:
        layer: a :class:`~structdrop.torch.DropBlock2d` / :class:`~structdrop.torch.DropBlock3d`
            (its current drop rate, block, seeds/tiling and channel sharing are used).
        weight: ``a x (C * prod(spatial))``, the readout's ``nn.Linear`` weight (input flattened
            C-major, as ``features.flatten(1)``).
        features: ``N x C x spatial``, the unmasked feature maps (batch-first).

    Returns:
        A 0-dim tensor (sum over the batch), differentiable in ``weight`` and ``features``.
    """
    shape = _check(layer, weight, features)
    k = len(shape)
    p = layer.p
    channels = features.shape[1]
    W = weight.reshape(weight.shape[0], channels, *shape)
    if p == 0.0:
        return (W.sum() + features.sum()) * 0.0
    tables = [t.to(device=features.device) for t in layer._axis_tables(shape)]
    if layer.share_channels:
        lhs = rhs = torch.einsum("nc...,ac...->na...", features, W)  # readout of each unit, N x a x U
    else:
        lhs, rhs = W, features
    reach = [min(n, b) for n, b in zip(shape, layer.block_size)]
    total = features.new_zeros(())
    for delta in itertools.product(*(range(-(m - 1), m) for m in reach)):
        first = next((d for d in delta if d), 0)
        if first < 0:
            continue  # C-bar and the products are symmetric in (u, v): offset -delta adds the same
        pair = torch.ones((), dtype=torch.float64, device=features.device)
        u_index, v_index = [slice(None), slice(None)], [slice(None), slice(None)]
        for axis, (n, d) in enumerate(zip(shape, delta)):
            diag = torch.diagonal(tables[axis], offset=d)  # entries (u, u + d), u from max(0, -d)
            view = [1] * k
            view[axis] = diag.numel()
            pair = pair * diag.reshape(view)
            u_index.append(slice(max(0, -d), n - max(0, d)))
            v_index.append(slice(max(0, d), n - max(0, -d)))
        cbar = layer._cbar_from(pair, p).to(features.dtype)
        if layer.share_channels:
            term = (cbar * (lhs[tuple(u_index)] * rhs[tuple(v_index)]).sum((0, 1))).sum()
        else:
            gram_w = (W[tuple(u_index)] * W[tuple(v_index)]).sum(0)  # C x region
            gram_f = (features[tuple(u_index)] * features[tuple(v_index)]).sum(0)
            term = (cbar * (gram_w * gram_f).sum(0)).sum()
        total = total + (term if first == 0 else 2.0 * term)
    return total


def dropblock_conv_objective(
    layer: _DropBlockNd,
    targets: torch.Tensor,
    weight: torch.Tensor,
    features: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``E ||Y - W (z/mu * F) - c||^2`` exactly: fit of the unmasked features + the regulariser.

    Args:
        layer, weight, features: as :func:`dropblock_conv_regularizer`.
        targets: ``N x a`` (batch-first, like the features and ``nn.Linear`` outputs).
        bias: the readout's bias ``c`` (``a``), or None.

    Returns:
        A 0-dim tensor: the sum over the batch of the expected squared errors.
    """
    _check(layer, weight, features)
    if not isinstance(targets, torch.Tensor) or targets.shape != (features.shape[0], weight.shape[0]):
        raise ValueError(f"targets must be N x a = {(features.shape[0], weight.shape[0])}, "
                         f"got {tuple(getattr(targets, 'shape', ()))}")
    out = features.flatten(1) @ weight.T
    if bias is not None:
        out = out + bias
    return (targets - out).square().sum() + dropblock_conv_regularizer(layer, weight, features)

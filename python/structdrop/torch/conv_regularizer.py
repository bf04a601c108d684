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

    independent:  sum_delta sum_{c,u} C-bar(u, u+delta) (sum_a W_acu W_ac(u+delta))
                                                        (sum_n F_ncu F_nc(u+delta))
    shared:       sum_delta sum_u C-bar(u, u+delta) sum_{n,a} P_nau P_na(u+delta),
                  with P_nau = sum_c W_acu F_ncu

The offsets of the leading spatial axes are looped over (``prod(min(b_i, n_i))`` of them for
the axes but the last, half by symmetry); along the last axis every pair of positions is taken
at once, so each Gram factor is one batched matrix product over (channel, position), e.g. for
2-D maps ``C H`` products of ``W x a`` by ``a x W`` (and of ``W x N`` by ``N x W``): time
O(b_1 (a + N) C H W^2), memory O(C H W^2) for one offset at a time (the backward pass recomputes
the blocks and accumulates in place). Everything is differentiable (in W, F, Y and the bias), so it
can be used as a loss term instead of, or next to, sampled masks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import torch

from .._migration import renamed_keywords
from ._orders import reordered
from .dropblock_nd import _DropBlockNd

__all__ = ["dropblock_conv_objective", "dropblock_conv_regularizer"]


def _conv_shapes(named: Mapping[str, Any]) -> bool:
    """Whether the arrays fit (batch_features N x C x ..., batch_targets N x a, weight a x .)."""
    dims = {"batch_features": 3, "batch_targets": 2, "weight": 2}
    for name, value in named.items():
        if name in dims and not isinstance(value, torch.Tensor):
            return False
        if name == "batch_features" and value.dim() < 3:
            return False
        if name in ("batch_targets", "weight") and value.dim() != 2:
            return False
    t, f, w = (named.get(n) for n in ("batch_targets", "batch_features", "weight"))
    return (t is None or f is None or t.shape[0] == f.shape[0]) and (
        t is None or w is None or t.shape[1] == w.shape[0]
    )


def _check(layer: object, weight: torch.Tensor, features: torch.Tensor) -> tuple[int, ...]:
    if not isinstance(layer, _DropBlockNd):
        raise TypeError(
            f"layer must be a structdrop DropBlock2d or DropBlock3d, got {type(layer).__name__}"
        )
    for name, value in (("weight", weight), ("batch_features", features)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor")
    k = layer._k
    if features.dim() != k + 2:
        raise ValueError(
            f"batch_features must be (N, C, {layer._spatial_names}) for {type(layer).__name__}, "
            f"got shape {tuple(features.shape)}"
        )
    if weight.dtype != features.dtype or weight.device != features.device:
        raise TypeError("weight and batch_features must have the same dtype and device")
    d = math.prod(features.shape[1:])
    if weight.dim() != 2 or weight.shape[1] != d:
        raise ValueError(
            f"weight must be a x (C * prod(spatial)) = a x {d} (an nn.Linear weight on the "
            f"flattened features), got shape {tuple(weight.shape)}"
        )
    return layer._check_shape(tuple(features.shape[2:]))


def _row_band(
    layer: _DropBlockNd, shape: tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device
) -> list[tuple[tuple, tuple, torch.Tensor]]:
    """Per offset ``delta`` of the leading axes: (u slices, u + delta slices, weighted C-bar block).

    The block couples every unit of the last axis at ``u`` with every one at ``u + delta``:
    shape ``region x n_last x n_last``. C-bar and the Gram products are symmetric in (u, v), so
    offset -delta adds what delta adds: only offsets whose first non-zero entry is positive are
    kept, with weight 2 (the zero offset holds both directions of the last axis itself).
    """
    lead = len(shape) - 1
    tables = layer._axis_tables(shape)
    reach = [min(n, b) for n, b in zip(shape[:-1], layer.block_size[:-1])]
    band = []
    for delta in itertools.product(*(range(-(m - 1), m) for m in reach)):
        first = next((d for d in delta if d), 0)
        if first < 0:
            continue
        pair = tables[-1]  # n_last x n_last
        u_index, v_index = [slice(None), slice(None)], [slice(None), slice(None)]
        for axis, (n, d) in enumerate(zip(shape[:-1], delta)):
            diag = torch.diagonal(tables[axis], offset=d)  # entries (u, u + d), u from max(0, -d)
            view = [1] * (lead + 2)
            view[axis] = diag.numel()
            pair = pair * diag.reshape(view)
            u_index.append(slice(max(0, -d), n - max(0, d)))
            v_index.append(slice(max(0, d), n - max(0, -d)))
        weight = layer._cbar_from(pair, p) * (1.0 if first == 0 else 2.0)
        # slices and weights in the (leading axes.., C, n_last, l) layout that _BandGram works in
        weight = weight.unsqueeze(-3).to(dtype=dtype, device=device)
        band.append((tuple(u_index[2:]), tuple(v_index[2:]), weight))
    return band


class _BandGram(torch.autograd.Function):
    """sum_band sum <w, G_X(u, v) * G_Z(u, v)> with G_X(u, v)[c, .., x, y] = sum_l X[l, c, u.., x]
    X[l, c, v.., y].

    X (and Z, or None for G_Z = 1) are permuted once to a (leading axes.., C, n_last, l) layout,
    so that a slice of the first axis is contiguous and every Gram block is one batched matrix
    product; the backward pass recomputes the blocks (they can be large) and accumulates the
    gradients in place, d/dX[u] += (w G_Z) X[v] and d/dX[v] += (w G_Z)^T X[u], instead of
    autograd's full-size buffer per slice and offset.
    """

    @staticmethod
    def _gram(Xp: torch.Tensor, u: tuple, v: tuple) -> torch.Tensor:
        return Xp[u] @ Xp[v].transpose(-1, -2)

    @staticmethod
    def _order(X: torch.Tensor) -> list[int]:
        return [*range(2, X.dim() - 1), 1, X.dim() - 1, 0]

    @staticmethod
    def forward(ctx, X: torch.Tensor, Z: torch.Tensor | None, band: list) -> torch.Tensor:
        order = _BandGram._order(X)
        Xp = X.permute(order).contiguous()
        Zp = None if Z is None else Z.permute(order).contiguous()
        total = X.new_zeros(())
        for u, v, w in band:
            g = w * _BandGram._gram(Xp, u, v)
            if Zp is not None:
                g = g * _BandGram._gram(Zp, u, v)
            total = total + g.sum()
        ctx.band, ctx.order = band, order
        ctx.save_for_backward(Xp, Zp)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        Xp, Zp = ctx.saved_tensors
        wants_x, wants_z = ctx.needs_input_grad[0], Zp is not None and ctx.needs_input_grad[1]
        gX = torch.zeros_like(Xp) if wants_x else None
        gZ = torch.zeros_like(Zp) if wants_z else None
        for u, v, w in ctx.band:
            gram_x = _BandGram._gram(Xp, u, v)
            gram_z = None if Zp is None else _BandGram._gram(Zp, u, v)
            if gX is not None:
                coef = w if gram_z is None else w * gram_z
                gX[u] += coef @ Xp[v]
                gX[v] += coef.transpose(-1, -2) @ Xp[u]
            if gZ is not None:
                coef = w * gram_x
                gZ[u] += coef @ Zp[v]
                gZ[v] += coef.transpose(-1, -2) @ Zp[u]
        inverse = [ctx.order.index(i) for i in range(len(ctx.order))]
        out_x = None if gX is None else (grad * gX).permute(inverse)
        out_z = None if gZ is None else (grad * gZ).permute(inverse)
        return out_x, out_z, None


@renamed_keywords("dropblock_conv_regularizer", features="batch_features")
def dropblock_conv_regularizer(
    layer: _DropBlockNd, weight: torch.Tensor, batch_features: torch.Tensor
) -> torch.Tensor:
    """``E ||W (z/mu * F)||^2 - ||W F||^2``: the exact regulariser of ``layer`` under a
    linear readout.

    Args:
        layer: a :class:`~structdrop.torch.DropBlock2d` / :class:`~structdrop.torch.DropBlock3d`
            (its current drop rate, block, seeds/tiling and channel sharing are used).
        weight: ``a x (C * prod(spatial))``, the readout's ``nn.Linear`` weight (input flattened
            C-major, as ``batch_features.flatten(1)``).
        batch_features: ``N x C x spatial``, the unmasked feature maps, batch-first (``features=``
            before 1.0).

    Returns:
        A 0-dim tensor (sum over the batch), differentiable in ``weight`` and ``batch_features``.

    Raises:
        TypeError: ``layer`` is not a DropBlock2d/3d, a tensor is not floating-point, or the
            dtypes/devices differ.
        ValueError: the shapes do not agree, or a block that does not fit the map.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> layer = sdt.DropBlock2d(2, p=0.25)
        >>> F, W = torch.ones(2, 1, 3, 3), torch.ones(1, 9)
        >>> bool(sdt.dropblock_conv_regularizer(layer, W, F) > 0)
        True
    """
    features = batch_features
    shape = _check(layer, weight, features)
    p = layer.p
    channels = features.shape[1]
    W = weight.reshape(weight.shape[0], channels, *shape)
    if p == 0.0:
        return (W.sum() + features.sum()) * 0.0
    band = _row_band(layer, shape, p, features.dtype, features.device)
    if layer.share_channels:
        # one mask for all channels: the noise of output a is sum_u (z_u/mu_u - 1) P_nau with
        # P_nau = sum_c W_acu F_ncu, so the regulariser is the band form of P alone
        P = torch.einsum("nc...,ac...->na...", features, W).reshape(-1, 1, *shape)
        return _BandGram.apply(P, None, band)
    return _BandGram.apply(W, features, band)


@renamed_keywords("dropblock_conv_objective", targets="batch_targets", features="batch_features")
@reordered(
    "dropblock_conv_objective",
    1,
    ("batch_features", "batch_targets", "weight"),
    ("batch_targets", "weight", "batch_features"),
    _conv_shapes,
)
def dropblock_conv_objective(
    layer: _DropBlockNd,
    batch_features: torch.Tensor,
    batch_targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``E ||Y - W (z/mu * F) - c||^2`` exactly: fit of the unmasked features + the regulariser.

    Inputs before targets (the order before 1.0, ``(layer, targets, weight, features, bias)``, is
    accepted with a FutureWarning: the feature maps have more dimensions than the targets, so the
    shapes always tell the orders apart).

    Args:
        layer, weight, batch_features: as :func:`dropblock_conv_regularizer`.
        batch_targets: ``N x a``, batch-first like the features and ``nn.Linear`` outputs
            (``targets=`` before 1.0).
        bias: the readout's bias ``c`` (``a``), or None.

    Returns:
        A 0-dim tensor: the sum over the batch of the expected squared errors.

    Raises:
        TypeError: as :func:`dropblock_conv_regularizer`.
        ValueError: ``batch_targets`` is not N x a, or as :func:`dropblock_conv_regularizer`.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> layer = sdt.DropBlock2d(2, p=0.25)
        >>> F, Y, W = torch.ones(2, 1, 3, 3), torch.zeros(2, 1), torch.ones(1, 9)
        >>> bool(sdt.dropblock_conv_objective(layer, F, Y, W) > 2 * 81)
        True
    """
    features, targets = batch_features, batch_targets
    _check(layer, weight, features)
    if not isinstance(targets, torch.Tensor) or targets.shape != (
        features.shape[0],
        weight.shape[0],
    ):
        raise ValueError(
            f"batch_targets must be N x a = {(features.shape[0], weight.shape[0])}, "
            f"got {tuple(getattr(targets, 'shape', ()))}"
        )
    out = features.flatten(1) @ weight.T
    if bias is not None:
        out = out + bias
    return (targets - out).square().sum() + dropblock_conv_regularizer(layer, weight, features)

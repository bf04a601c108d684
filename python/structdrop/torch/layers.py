"""Structured dropout layers for fully connected features (Sections 2 and 3 of the paper).

All layers draw their masks with ``torch.rand`` on the input's device (so ``torch.manual_seed``
makes them reproducible), in float64 for float64 inputs and float32 otherwise: a float16 or
bfloat16 uniform would quantise ``rand < theta`` (bfloat16 keeps 8 bits: ``DropBlock1d(0.5, 1)``
then had mean output 1.0018 for input 1, 8 standard errors off). They draw one independent mask
per sample (every index of the leading dimensions is a sample; the last dimension holds the
features), scale the kept units by the inverse of their exact keep probability (so the output's
mean equals the input), and are the identity in eval mode.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .._blocks import check_block_width
from .._validation import as_int, as_probability
from ._schemes import cover_counts, overlapping_gamma

__all__ = ["DropBlock1d", "OverlappingDropBlock1d", "DropConnectLinear"]


def _draw(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the uniforms for inputs of ``dtype``: float64 for float64, else float32 (the
    seeded float32/float64 streams are those of ``torch.rand`` in the input's dtype)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class DropBlock1d(nn.Module):
    """DropBlock on a feature vector with the paper's non-overlapping blocks (Algorithm 1).

    The ``d`` features (last dimension, a multiple of ``block_size``) are split into
    ``k = d / block_size`` blocks of consecutive features; each block is kept with probability
    ``theta`` independently (DropBlockSample(theta, r) of Section 2) and the kept features are
    scaled by ``1/theta``. Its deterministic equivalent is Lemma 1 (see
    :func:`structdrop.torch.dropblock_regularizer`). ``block_size=1`` is ordinary Dropout.

    Args:
        theta: retain probability in (0, 1]; 1 makes the layer the identity.
        block_size: r, the number of consecutive features dropped together.
    """

    def __init__(self, theta: float, block_size: int) -> None:
        super().__init__()
        self.theta = as_probability("theta", theta)
        self.block_size = as_int("block_size", block_size, minimum=1)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, block_size={self.block_size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1:
            raise ValueError("DropBlock1d expects features in the last dimension, got a scalar")
        d = x.shape[-1]
        check_block_width(
            d,
            self.block_size,
            overlapping=False,
            owner="DropBlock1d",
            width_name="the feature count d",
        )
        if not self.training or self.theta == 1.0:
            return x
        k = d // self.block_size
        keep = torch.rand(*x.shape[:-1], k, 1, device=x.device, dtype=_draw(x.dtype)) < self.theta
        mask = keep.expand(*x.shape[:-1], k, self.block_size).reshape(x.shape)
        return x * mask.to(x.dtype) * (1.0 / self.theta)


class OverlappingDropBlock1d(nn.Module):
    """The original (overlapping) DropBlock on a feature vector (Section 5.3).

    Every seed position ``j = 0 .. d - block_size`` fires with probability ``gamma``
    independently; a firing seed drops units ``j .. j + block_size - 1``. Unit ``i`` is kept with
    probability ``(1 - gamma)**|W(i)|``, ``W(i)`` the seeds whose block covers it, so edge units
    are kept more often than interior ones; each kept unit is scaled by the inverse of its own keep
    probability, which makes the layer unbiased unit by unit (this differs from the printed
    paper's single theta correction, which is exact only for interior units). Giving ``theta``
    instead of ``gamma`` sets ``(1 - gamma)**block_size = theta`` (interior keep probability).
    The same distribution as :class:`structdrop.schemes.OverlappingDropBlock`; its exact
    deterministic equivalent is Lemma 10
    (:func:`structdrop.torch.overlapping_dropblock_regularizer`).

    Args:
        block_size: r, the length of a dropped block (at most the feature count).
        gamma: seed probability in [0, 1).
        theta: alternatively, the interior keep probability in (0, 1].
    """

    def __init__(
        self, block_size: int, gamma: float | None = None, theta: float | None = None
    ) -> None:
        super().__init__()
        self.block_size = as_int("block_size", block_size, minimum=1)
        self.gamma = overlapping_gamma(self.block_size, gamma, theta)
        self._scale_cache: dict[tuple, torch.Tensor] = {}

    def extra_repr(self) -> str:
        return f"block_size={self.block_size}, gamma={self.gamma}"

    def _check_width(self, d: int) -> None:
        check_block_width(
            d,
            self.block_size,
            overlapping=True,
            owner="OverlappingDropBlock1d",
            width_name="the feature count d",
        )

    def keep_probabilities(self, d: int) -> list[float]:
        """Exact keep probability of each of ``d`` units."""
        self._check_width(d)
        return [(1.0 - self.gamma) ** c for c in cover_counts(d, self.block_size)]

    def _inverse_keep(self, d: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (d, device, dtype)
        scale = self._scale_cache.get(key)
        if scale is None:
            scale = 1.0 / torch.tensor(self.keep_probabilities(d), dtype=torch.float64)
            scale = scale.to(device=device, dtype=dtype)
            self._scale_cache[key] = scale
        return scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1:
            raise ValueError(
                "OverlappingDropBlock1d expects features in the last dimension, got a scalar"
            )
        d = x.shape[-1]
        self._check_width(d)
        if not self.training or self.gamma == 0.0 or x.numel() == 0:
            return x
        r = self.block_size
        lead = x.shape[:-1]
        rows = math.prod(lead)
        uniform = torch.rand(rows, 1, d - r + 1, device=x.device, dtype=_draw(x.dtype))
        seeds = (uniform < self.gamma).to(x.dtype)
        # unit i is dropped when a seed in [i - r + 1, i] fired: a sliding max over zero-padded
        # seeds
        dropped = F.max_pool1d(F.pad(seeds, (r - 1, r - 1)), kernel_size=r, stride=1)
        keep = (1.0 - dropped).reshape(x.shape)
        return x * keep * self._inverse_keep(d, x.device, x.dtype)


class DropConnectLinear(nn.Linear):
    """A linear layer with DropConnect (Section 4): each weight is kept with probability ``theta``.

    In training mode the output for sample n is ``x_n (M_n * W)^T / theta + b`` with an
    independent Bernoulli(theta) mask ``M_n`` per sample (the bias is not masked); in eval mode it
    is the plain linear layer. The weight is ``V^T`` in the paper's notation ``U (Z * V)^T g(X)``;
    the exact deterministic equivalent is :func:`structdrop.torch.dropconnect_regularizer` (the
    paper's Theorem 13 is false in general, see docs/differences-from-paper.md). Per-sample masks
    cost ``batch * out_features * in_features`` memory; ``per_sample=False`` draws one mask per
    forward call instead (shared by the batch: an unbiased but correlated estimate).

    Args:
        in_features, out_features, bias: as :class:`torch.nn.Linear`.
        theta: retain probability of each weight, in (0, 1].
        per_sample: one mask per sample (default) or one per call.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        theta: float,
        bias: bool = True,
        per_sample: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.theta = as_probability("theta", theta)
        self.per_sample = bool(per_sample)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", theta={self.theta}, per_sample={self.per_sample}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.theta == 1.0:
            return F.linear(x, self.weight, self.bias)
        w = self.weight
        if not self.per_sample:
            mask = torch.rand(w.shape, device=w.device, dtype=_draw(w.dtype)) < self.theta
            return F.linear(x, w * mask.to(w.dtype) * (1.0 / self.theta), self.bias)
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        shape = (flat.shape[0], *w.shape)
        mask = torch.rand(shape, device=w.device, dtype=_draw(w.dtype)) < self.theta
        masked = w.unsqueeze(0) * mask.to(w.dtype)
        out = torch.bmm(masked, flat.unsqueeze(-1)).squeeze(-1) * (1.0 / self.theta)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*lead, w.shape[0])

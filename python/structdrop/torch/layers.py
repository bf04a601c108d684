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

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .._blocks import check_block_width
from .._migration import warn_old_spelling
from .._validation import as_int
from ._orders import init_positional_became_keyword
from ._schemes import cover_counts, overlapping_gamma, strength

__all__ = ["DropBlock1d", "OverlappingDropBlock1d", "DropConnectLinear"]


def _draw(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the uniforms for inputs of ``dtype``: float64 for float64, else float32 (the
    seeded float32/float64 streams are those of ``torch.rand`` in the input's dtype)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _old_dropblock1d_order(init: Callable[..., None]) -> Callable[..., None]:
    """``DropBlock1d(theta, block_size)`` (before 1.0) is ``DropBlock1d(block_size, theta=theta,
    overlapping=False)``; the new signature has one positional argument, so two prove the old
    order, and the values are checked to fit it (a keep probability, then a block size)."""

    @functools.wraps(init)
    def wrapper(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        old = len(args) == 2 or (len(args) == 1 and "block_size" in kwargs)
        if not old:
            return init(self, *args, **kwargs)
        theta = args[0]
        block_size = args[1] if len(args) == 2 else kwargs.pop("block_size")
        if "p" in kwargs or "theta" in kwargs:
            raise TypeError("DropBlock1d() got the strength twice: by position and by keyword")
        if _is_int(theta) and theta > 1 and not _is_int(block_size):
            raise TypeError(
                f"DropBlock1d({theta!r}, {block_size!r}): the strength is keyword-only since "
                f"structdrop 1.0: write DropBlock1d({theta!r}, theta={block_size!r}) (keep "
                f"probability) or DropBlock1d({theta!r}, p=...) (drop probability)"
            )
        overlapping = kwargs.pop("overlapping", False)
        warn_old_spelling(
            "DropBlock1d(theta, block_size)",
            "DropBlock1d(block_size, theta=theta, overlapping=False) or "
            "DropBlock1d(block_size, p=1 - theta, overlapping=False)",
        )
        return init(self, block_size, theta=theta, overlapping=overlapping, **kwargs)

    return wrapper


class DropBlock1d(nn.Module):
    """DropBlock on a feature vector: the paper's non-overlapping blocks, or the original
    overlapping ones.

    ``overlapping=False`` (Algorithm 1): the ``d`` features (last dimension, a multiple of
    ``block_size``) are split into ``k = d / block_size`` blocks of consecutive features; each
    block is kept with probability ``theta`` independently (DropBlockSample(theta, r) of
    Section 2) and the kept features are scaled by ``1/theta``. Its deterministic equivalent is
    Lemma 1 (:func:`structdrop.torch.dropblock_regularizer`). ``block_size=1`` is ordinary Dropout.

    ``overlapping=True``: the law of :class:`OverlappingDropBlock1d` (seeds at positions
    ``0 .. d - block_size``, a firing seed drops ``block_size`` units, each unit rescaled by its
    exact keep probability), with an interior unit kept with probability ``theta``; this is
    :class:`DropBlock2d`'s ``seeds="valid"`` law on one axis.

    The default: without ``overlapping=`` the layer is non-overlapping, as before 1.0, and warns
    (FutureWarning) that the argument will be required: :class:`DropBlock2d` and
    :class:`DropBlock3d` overlap by default, so one default cannot serve every layer without
    silently changing existing calls. Pass ``overlapping=False`` or ``True`` explicitly.

    Args:
        block_size: r, the number of consecutive features dropped together.
        p: drop probability in [0, 1) (``torch.nn.Dropout``'s convention); or
        theta: retain probability ``1 - p`` in (0, 1] (the paper's); exactly one of them. At
            ``theta = 1`` the layer is the identity.
        overlapping: False for the paper's non-overlapping blocks, True for the original
            overlapping DropBlock (see above).

    Before 1.0 the layer was ``DropBlock1d(theta, block_size)``: that call still works, with a
    FutureWarning, as ``DropBlock1d(block_size, theta=theta, overlapping=False)``.

    Raises:
        ValueError: not exactly one of ``p`` and ``theta``, a value out of range; in
            :meth:`forward`, a feature count that ``block_size`` does not fit.
        TypeError: the old order with values that do not fit it (e.g. ``DropBlock1d(5, 0.5)``).

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> layer = sdt.DropBlock1d(2, p=0.5, overlapping=False)
        >>> out = layer(torch.ones(3, 4))
        >>> sorted(set(out.flatten().tolist())) in ([0.0, 2.0], [0.0], [2.0])
        True
    """

    @_old_dropblock1d_order
    def __init__(
        self,
        block_size: int,
        *,
        p: float | None = None,
        theta: float | None = None,
        overlapping: bool | None = None,
    ) -> None:
        super().__init__()
        if overlapping is None:
            warn_old_spelling(
                "DropBlock1d(...) without overlapping= (non-overlapping blocks, where DropBlock2d "
                "and DropBlock3d overlap by default)",
                "DropBlock1d(..., overlapping=False) to keep these blocks, or overlapping=True",
            )
        self.block_size = as_int("block_size", block_size, minimum=1)
        self.theta = strength(p, theta)[1]
        self.overlapping = bool(overlapping)
        # the overlapping law's seed probability: (1 - gamma)**block_size = theta
        self.gamma = (
            overlapping_gamma(self.block_size, theta=self.theta) if self.overlapping else 0.0
        )
        self._scale_cache: dict[tuple, torch.Tensor] = {}

    @property
    def p(self) -> float:
        """The drop probability ``1 - theta`` (of an interior unit when overlapping)."""
        return 1.0 - self.theta

    def extra_repr(self) -> str:
        return f"block_size={self.block_size}, theta={self.theta}, overlapping={self.overlapping}"

    def _check_width(self, d: int) -> None:
        check_block_width(
            d,
            self.block_size,
            overlapping=self.overlapping,
            owner=type(self).__name__,
            width_name="the feature count d",
        )

    def keep_probabilities(self, d: int) -> list[float]:
        """Exact keep probability of each of ``d`` units.

        Returns:
            ``d`` floats: ``theta`` each without overlap; ``(1 - gamma)**|W(i)|`` with overlap.

        Raises:
            ValueError: ``block_size`` does not fit ``d``.

        Example:
            >>> import structdrop.torch as sdt
            >>> sdt.DropBlock1d(2, theta=0.25, overlapping=True).keep_probabilities(3)
            [0.5, 0.25, 0.5]
        """
        self._check_width(d)
        if not self.overlapping:
            return [self.theta] * d
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
                f"{type(self).__name__} expects features in the last dimension, got a scalar"
            )
        d = x.shape[-1]
        self._check_width(d)
        if not self.training or self.theta == 1.0 or x.numel() == 0:
            return x
        r = self.block_size
        if not self.overlapping:
            k = d // r
            keep = torch.rand(*x.shape[:-1], k, 1, device=x.device, dtype=_draw(x.dtype))
            mask = (keep < self.theta).expand(*x.shape[:-1], k, r).reshape(x.shape)
            return x * mask.to(x.dtype) * (1.0 / self.theta)
        rows = math.prod(x.shape[:-1])
        uniform = torch.rand(rows, 1, d - r + 1, device=x.device, dtype=_draw(x.dtype))
        seeds = (uniform < self.gamma).to(x.dtype)
        # unit i is dropped when a seed in [i - r + 1, i] fired: a sliding max over zero-padded
        # seeds
        dropped = F.max_pool1d(F.pad(seeds, (r - 1, r - 1)), kernel_size=r, stride=1)
        keep_units = (1.0 - dropped).reshape(x.shape)
        return x * keep_units * self._inverse_keep(d, x.device, x.dtype)


class OverlappingDropBlock1d(DropBlock1d):
    """The original (overlapping) DropBlock on a feature vector (Section 5.3):
    ``DropBlock1d(block_size, ..., overlapping=True)`` with the seed probability as a further way
    to give the strength.

    Every seed position ``j = 0 .. d - block_size`` fires with probability ``gamma``
    independently; a firing seed drops units ``j .. j + block_size - 1``. Unit ``i`` is kept with
    probability ``(1 - gamma)**|W(i)|``, ``W(i)`` the seeds whose block covers it, so edge units
    are kept more often than interior ones; each kept unit is scaled by the inverse of its own keep
    probability, which makes the layer unbiased unit by unit (this differs from the printed
    paper's single theta correction, which is exact only for interior units). Giving ``theta``
    (or ``p = 1 - theta``) instead of ``gamma`` sets ``(1 - gamma)**block_size = theta`` (interior
    keep probability). The same distribution as :class:`structdrop.schemes.OverlappingDropBlock`;
    its exact deterministic equivalent is Lemma 10
    (:func:`structdrop.torch.overlapping_dropblock_regularizer`).

    Args:
        block_size: r, the length of a dropped block (at most the feature count).
        gamma: seed probability in [0, 1); or
        p: interior drop probability in [0, 1); or
        theta: interior keep probability in (0, 1]; exactly one of the three (keywords since
            1.0: ``OverlappingDropBlock1d(block_size, gamma, theta)`` by position warns).

    Raises:
        ValueError: not exactly one of ``gamma``, ``p``, ``theta``, or a value out of range.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> layer = sdt.OverlappingDropBlock1d(2, gamma=0.5)
        >>> layer.keep_probabilities(3)
        [0.5, 0.25, 0.5]
    """

    @init_positional_became_keyword("OverlappingDropBlock1d", 1, ("gamma", "theta"))
    def __init__(
        self,
        block_size: int,
        *,
        gamma: float | None = None,
        p: float | None = None,
        theta: float | None = None,
    ) -> None:
        given = [
            name for name, v in (("gamma", gamma), ("p", p), ("theta", theta)) if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of gamma (seed probability), p (drop probability) and theta "
                "(retain probability)"
            )
        r = as_int("block_size", block_size, minimum=1)
        keep = (
            (1.0 - overlapping_gamma(r, gamma=gamma)) ** r
            if gamma is not None
            else strength(p, theta)[1]
        )
        super().__init__(r, theta=keep, overlapping=True)
        if gamma is not None:
            self.gamma = overlapping_gamma(r, gamma=gamma)  # exact, not through theta

    def extra_repr(self) -> str:
        return f"block_size={self.block_size}, gamma={self.gamma}"


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
        in_features, out_features: as :class:`torch.nn.Linear`.
        p: drop probability of each weight in [0, 1); or
        theta: retain probability of each weight in (0, 1]; exactly one of them.
        bias, device, dtype: as :class:`torch.nn.Linear`.
        per_sample: one mask per sample (default) or one per call.

    Before 1.0 the strength was the third positional argument, ``DropConnectLinear(in, out,
    theta, bias, per_sample)``: by position it still works, with a FutureWarning.

    Raises:
        ValueError: not exactly one of ``p`` and ``theta``, or a value out of range.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> layer = sdt.DropConnectLinear(3, 2, p=0.5)
        >>> layer(torch.ones(4, 3)).shape
        torch.Size([4, 2])
    """

    @init_positional_became_keyword(
        "DropConnectLinear", 2, ("theta", "bias", "per_sample", "device", "dtype")
    )
    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        p: float | None = None,
        theta: float | None = None,
        bias: bool = True,
        per_sample: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.theta = strength(p, theta)[1]
        self.per_sample = bool(per_sample)

    @property
    def p(self) -> float:
        """The drop probability ``1 - theta`` of each weight."""
        return 1.0 - self.theta

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

"""DropBlock on 2-D and 3-D feature maps, unbiased unit by unit, with exact mask moments.

Two mask laws act on each (sample, channel) map of spatial shape ``(n_1, .., n_k)`` with block
``(b_1, .., b_k)``:

Overlapping (``overlapping=True``, the original DropBlock of Ghiasi et al.). Seeds fire
independently with probability ``gamma``; a seed at ``s`` drops the block ``s + [0, b)``, clipped
at the borders. Unit ``u`` is kept iff no seed of ``W(u) = {s : s <= u < s + b}`` fires, so
``P(keep u) = (1 - gamma)^|W(u)|`` and ``P(keep u and v) = (1 - gamma)^|W(u) | W(v)|``; with
unit-wise rescaling the characteristic matrix is ``C-bar_uv = (1 - gamma)^-|W(u) & W(v)| - 1``
(the 1-D counting of :class:`structdrop.schemes.OverlappingDropBlock` done per axis: the seed
windows are boxes, so the counts are products over the axes). Where seeds may lie:

- ``seeds="full"`` (default): every position whose block intersects the map,
  ``s_i in [1 - b_i, n_i - 1]``. Every unit is covered by exactly ``prod(b)`` seeds, so EVERY unit
  (borders included) is dropped with probability exactly ``p``, blocks larger than the map and
  even blocks need no special case, and the rescaling is the single factor ``1 / (1 - p)``.
- ``seeds="valid"``: only where the whole block fits, ``s_i in [0, n_i - b_i]`` (the DropBlock
  paper and torchvision). Border units are covered by fewer seeds, so they are dropped less
  often; each kept unit is scaled by its own ``(1 - gamma)^-|W(u)|``. Needs ``b_i <= n_i``.

In both, ``gamma = 1 - (1 - p)^(1 / prod(b))``: a unit covered by ``prod(b)`` seeds (every unit
for ``"full"``, the interior for ``"valid"``) is dropped with probability exactly ``p``. This
replaces the DropBlock paper's heuristic ``gamma = p n^2 / (b^2 (n - b + 1)^2)`` and its
batch-wide renormalisation, under which interior units are dropped more often than ``p``, border
units less often, and kept units are not rescaled by their own keep probability
(see :func:`mask_statistics`).

Non-overlapping (``overlapping=False``, the paper's DropBlockSample generalised to k axes). The
map is tiled by boxes of ``b`` (partial tiles at the far borders); each tile is kept with
probability ``theta = 1 - p`` independently, so every unit is kept with probability ``theta`` and
scaled by ``1/theta``. Units share a fate iff they lie in the same tile: ``C-bar_uv = beta`` for
the same tile, else 0 (``beta = p / (1 - p)``), the block-diagonal matrix of Lemma 1. With
``random_offset=True`` the tiling is shifted by an offset drawn uniformly in ``[0, b_i)`` per axis
and per mask, so ``P(same tile) = prod_i max(0, b_i - |u_i - v_i|) / b_i`` and
``C-bar_uv = beta P(same tile)``.

Masks are independent across samples and channels (``share_channels=True``: one mask per sample,
shared by all its channels), drawn with ``torch.rand`` on the input's device (``generator=`` for
a private stream), in float64 for float64 inputs and float32 otherwise (float16/bfloat16 inputs
would make ``rand < gamma`` coarse). Seeds become blocks by a separable sliding maximum
(``max_pool`` along one axis at a time: ``sum(b)`` instead of ``prod(b)`` comparisons per unit), or
on the CPU, when few seeds fire, by enumerating only the firing seeds (geometric gaps between
successes, float64 uniforms) and painting their blocks by index: the same law, much less work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .._blocks import seed_probability
from .._results import ResultEquality
from .._validation import as_int
from ._schemes import strength
from .schedules import ScheduledDropRate

__all__ = ["DropBlock2d", "DropBlock3d", "MaskMoments"]

_SEEDS = ("full", "valid")
_SAMPLERS = ("auto", "dense", "sparse")


@dataclass(frozen=True, eq=False)
class MaskMoments(ResultEquality):
    """Exact first and second moments of a DropBlock keep mask on one spatial map.

    Attributes:
        keep_probability: ``mu``, shape = the spatial shape: ``P(unit u is kept)``.
        covariance: ``Cov(z)`` of the 0/1 keep indicators over the row-major flattened units,
            ``U x U`` with ``U = prod(spatial shape)``.

    Channels are independent copies of this law (identical copies with ``share_channels``).

    Example:
        >>> import structdrop.torch as sdt
        >>> m = sdt.DropBlock2d(2, p=0.2).mask_moments(4, 4)
        >>> m.keep_probability.shape, m.covariance.shape
        (torch.Size([4, 4]), torch.Size([16, 16]))
    """

    keep_probability: torch.Tensor
    covariance: torch.Tensor

    @property
    def characteristic_matrix(self) -> torch.Tensor:
        """C-bar = diag(mu)^-1 Cov(z) diag(mu)^-1 (eq. 16), ``U x U``."""
        mu = self.keep_probability.reshape(-1)
        return self.covariance / (mu[:, None] * mu[None, :])

    @property
    def drop_probability(self) -> torch.Tensor:
        """``1 - mu``, shape = the spatial shape."""
        return 1.0 - self.keep_probability


def _as_tuple(name: str, value: object, k: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        if len(value) != k:
            raise ValueError(f"{name} must be an int or a tuple of {k} ints, got {tuple(value)}")
        return tuple(as_int(f"{name}[{i}]", v, minimum=1) for i, v in enumerate(value))
    return (as_int(name, value, minimum=1),) * k


class _DropBlockNd(ScheduledDropRate):
    _k: int = 0

    def __init__(
        self,
        block_size: int | tuple[int, ...],
        *,
        p: float | None = None,
        theta: float | None = None,
        overlapping: bool = True,
        seeds: str = "full",
        random_offset: bool = False,
        share_channels: bool = False,
        warmup_steps: int = 0,
        warmup: str = "linear",
        generator: torch.Generator | None = None,
        sampler: str = "auto",
    ) -> None:
        super().__init__()
        if sampler not in _SAMPLERS:
            raise ValueError(f"sampler must be one of {_SAMPLERS}, got {sampler!r}")
        self.sampler = sampler
        self.block_size = _as_tuple("block_size", block_size, self._k)
        if seeds not in _SEEDS:
            raise ValueError(f"seeds must be one of {_SEEDS}, got {seeds!r}")
        if random_offset and overlapping:
            raise ValueError(
                "random_offset shifts the non-overlapping tiling: it needs overlapping=False"
            )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got {type(generator).__name__}"
            )
        self.overlapping = bool(overlapping)
        self.seeds = seeds
        self.random_offset = bool(random_offset)
        self.share_channels = bool(share_channels)
        self.generator = generator
        self._init_schedule(strength(p, theta)[0], warmup_steps, warmup)
        self._scale_cache: dict[tuple, torch.Tensor] = {}

    def extra_repr(self) -> str:
        kind = (
            f"overlapping=True, seeds={self.seeds!r}"
            if self.overlapping
            else (f"overlapping=False, random_offset={self.random_offset}")
        )
        return (
            f"p={self.target_p}, block_size={self.block_size}, {kind}, "
            f"share_channels={self.share_channels}" + self._schedule_repr()
        )

    # ------------------------------------------------------------------ exact statistics
    def gamma(self, p: float | None = None) -> float:
        """Seed probability of the overlapping law, ``1 - (1 - p)^(1/prod(block))``.

        Args:
            p: drop rate in [0, 1); the layer's current one (after the warm-up schedule) if None.

        Returns:
            The probability that a unit seeds a block: with independent seeds, a unit away from
            the border is kept with probability ``(1 - gamma)^prod(block) = 1 - p``.

        Raises:
            ValueError: ``p`` outside [0, 1).

        Example:
            >>> from structdrop.torch import DropBlock2d
            >>> layer = DropBlock2d(2, p=0.25)
            >>> round((1 - layer.gamma()) ** 4, 12)
            0.75
        """
        p = self.p if p is None else float(p)
        if not 0.0 <= p < 1.0:  # p = 1 would need a seed everywhere: no finite seed law
            raise ValueError(f"p must be a drop rate in [0, 1), got {p!r}")
        return seed_probability(math.prod(self.block_size), drop_rate=p)

    def _check_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) != self._k:
            raise ValueError(
                f"{type(self).__name__} needs {self._k} spatial sizes, got {tuple(shape)}"
            )
        shape = tuple(as_int("spatial size", n, minimum=1) for n in shape)
        if self.overlapping and self.seeds == "valid":
            for n, b in zip(shape, self.block_size):
                if b > n:
                    raise ValueError(
                        f"seeds='valid' needs block_size <= the map size on every axis, got block "
                        f"{self.block_size} on a map {shape} (use seeds='full' for larger blocks)"
                    )
        return shape

    def _seed_range(self, n: int, b: int) -> tuple[int, int]:
        return (1 - b, n - 1) if self.seeds == "full" else (0, n - b)

    def _axis_tables(self, shape: tuple[int, ...]) -> list[torch.Tensor]:
        """Per axis an n x n float64 table whose products over the axes give the pair statistic.

        Overlapping: ``|W_i(u) & W_i(v)|`` (its diagonal is ``|W_i(u)|``); tiles:
        ``P(u_i, v_i in the same tile)``.
        """
        tables = []
        for n, b in zip(shape, self.block_size):
            u = torch.arange(n, dtype=torch.float64)
            if self.overlapping:
                lo, hi = self._seed_range(n, b)
                start = torch.maximum(
                    torch.maximum(u[:, None], u[None, :]) - b + 1, torch.tensor(float(lo))
                )
                stop = torch.minimum(torch.minimum(u[:, None], u[None, :]), torch.tensor(float(hi)))
                tables.append((stop - start + 1).clamp(min=0))
            elif self.random_offset:
                tables.append((b - (u[:, None] - u[None, :]).abs()).clamp(min=0) / b)
            else:
                tile = torch.div(u, b, rounding_mode="floor")
                tables.append((tile[:, None] == tile[None, :]).to(torch.float64))
        return tables

    def _cbar_from(self, pair: torch.Tensor, p: float) -> torch.Tensor:
        """C-bar from the product of the axis tables (float64)."""
        if p == 0.0:
            return torch.zeros_like(pair)
        if self.overlapping:
            # (1 - gamma)^-|W(u) & W(v)| - 1, computed as expm1 for accuracy at small gamma
            return torch.expm1(-pair * math.log1p(-self.gamma(p)))
        return (p / (1.0 - p)) * pair

    def _keep_probability(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        if not self.overlapping or p == 0.0:
            return torch.full(shape, 1.0 - p, dtype=torch.float64)
        count = torch.ones((), dtype=torch.float64)
        for i, table in enumerate(self._axis_tables(shape)):
            view = [1] * len(shape)
            view[i] = shape[i]
            count = count * torch.diagonal(table).reshape(view)
        return torch.exp(count * math.log1p(-self.gamma(p)))

    def mask_moments(
        self,
        *spatial_shape: int,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> MaskMoments:
        """Exact keep probabilities and covariance of the keep mask on a map of ``spatial_shape``.

        At the current drop rate (after the warm-up schedule). The covariance is dense
        (``prod(shape)^2`` entries): meant for maps up to a few thousand units. The law is the one
        :meth:`forward` samples (see the module docstring); this is the ``mean``/``covariance``
        pair that :func:`structdrop.torch.generalized_objective` takes (Lemma 10).

        Returns:
            :class:`MaskMoments`: ``keep_probability`` of ``spatial_shape`` and ``covariance`` of
            shape ``(prod(spatial_shape),) * 2``, in ``dtype`` on ``device``.

        Raises:
            ValueError: ``spatial_shape`` does not have one size per spatial axis of the layer.

        Example:
            >>> from structdrop.torch import DropBlock2d
            >>> moments = DropBlock2d(2, p=0.3, overlapping=False).mask_moments(4, 4)
            >>> tuple(moments.keep_probability.shape), tuple(moments.covariance.shape)
            ((4, 4), (16, 16))
            >>> round(float(moments.keep_probability.mean()), 12)
            0.7
        """
        shape = self._check_shape(tuple(spatial_shape))
        p = self.p
        mu = self._keep_probability(shape, p)
        pair = torch.ones((1, 1), dtype=torch.float64)
        for table in self._axis_tables(shape):
            pair = torch.kron(pair, table)  # row-major flattening = Kronecker order of the axes
        flat = mu.reshape(-1)
        cov = self._cbar_from(pair, p) * (flat[:, None] * flat[None, :])
        return MaskMoments(mu.to(dtype=dtype, device=device), cov.to(dtype=dtype, device=device))

    # ------------------------------------------------------------------ sampling
    def _sample_dtype(self, x: torch.Tensor) -> torch.dtype:
        return torch.float64 if x.dtype == torch.float64 else torch.float32

    def _uniform(self, shape: tuple[int, ...], x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        # maps in the input's memory format, so that the mask (and the output) keep it
        fmt = _memory_format(x, self._k) if len(shape) == x.dim() else torch.contiguous_format
        u = torch.empty(shape, dtype=dtype, device=x.device, memory_format=fmt)
        return u.uniform_(0.0, 1.0, generator=self.generator)

    def _inverse_keep(self, shape: tuple[int, ...], p: float, x: torch.Tensor) -> torch.Tensor:
        key = (shape, p, x.device, x.dtype)
        scale = self._scale_cache.get(key)
        if scale is None:
            if len(self._scale_cache) > 16:  # a warm-up changes p every step: keep the cache small
                self._scale_cache.clear()
            scale = (1.0 / self._keep_probability(shape, p)).to(device=x.device, dtype=x.dtype)
            self._scale_cache[key] = scale
        return scale

    def _dropped_overlapping(
        self, x: torch.Tensor, lead: tuple[int, int], shape: tuple[int, ...], p: float
    ) -> torch.Tensor:
        """0/1 tensor (1 = dropped) of shape lead + shape."""
        dtype = self._sample_dtype(x)
        full = self.seeds == "full"
        seed_shape = tuple(n + b - 1 if full else n - b + 1 for n, b in zip(shape, self.block_size))
        fired = (self._uniform(lead + seed_shape, x, dtype) < self.gamma(p)).to(dtype)
        pool = F.max_pool2d if self._k == 2 else F.max_pool3d
        for axis, b in enumerate(self.block_size):
            if b == 1:
                continue
            if not full:  # seed s covers s..s+b-1: zero seeds outside [0, n - b] on both sides
                pad = [0, 0] * self._k
                pad[2 * (self._k - 1 - axis)] = b - 1
                pad[2 * (self._k - 1 - axis) + 1] = b - 1
                fired = F.pad(fired, pad)
            kernel = [1] * self._k
            kernel[axis] = b
            fired = pool(fired, kernel_size=kernel, stride=1)
        return fired

    def _kept_tiles(
        self, x: torch.Tensor, lead: tuple[int, int], shape: tuple[int, ...], p: float
    ) -> torch.Tensor:
        """0/1 keep tensor of shape lead + shape for the (optionally shifted) tiling."""
        dtype = self._sample_dtype(x)
        offsets = None
        if self.random_offset:
            offsets = torch.floor(
                self._uniform(lead + (self._k,), x, torch.float64)
                * torch.tensor(self.block_size, dtype=torch.float64, device=x.device)
            )
            offsets = offsets.to(torch.int64)
        tiles = tuple(
            (n - 1 + (b - 1 if self.random_offset else 0)) // b + 1
            for n, b in zip(shape, self.block_size)
        )
        keep = (self._uniform(lead + tiles, x, dtype) >= p).to(dtype)
        for axis, (n, b) in enumerate(zip(shape, self.block_size)):
            units = torch.arange(n, device=x.device)
            if offsets is None:
                keep = keep.repeat_interleave(b, dim=2 + axis).narrow(2 + axis, 0, n)
                continue
            index = torch.div(
                units + offsets[..., axis, None], b, rounding_mode="floor"
            )  # lead x n
            view = list(lead) + [1] * self._k
            view[2 + axis] = n
            target = list(keep.shape)
            target[2 + axis] = n
            keep = keep.gather(2 + axis, index.reshape(view).expand(target))
        return keep

    def _use_sparse(
        self, x: torch.Tensor, lead: tuple[int, int], shape: tuple[int, ...], p: float
    ) -> bool:
        if self.sampler != "auto":
            return self.sampler == "sparse"
        if x.device.type != "cpu":
            return False  # the sparse path needs host-side sizes: a sync per call on accelerators
        full = self.seeds == "full"
        seeds = math.prod(n + b - 1 if full else n - b + 1 for n, b in zip(shape, self.block_size))
        painted = seeds * self.gamma(p) * math.prod(self.block_size)  # expected block units per map
        return painted <= 0.5 * math.prod(shape)

    def _kept_sparse(
        self,
        x: torch.Tensor,
        lead: tuple[int, int],
        shape: tuple[int, ...],
        p: float,
        fill: float = 1.0,
    ) -> torch.Tensor:
        """0/``fill`` keep tensor of lead + shape from the positions of the firing seeds only.

        The same law as the dense path: the firing seeds of the whole (lead x seed grid) are the
        successes of i.i.d. Bernoulli(gamma) trials, enumerated by geometric gaps, and each paints
        its block (clipped to the map) with zeros. Work O(#fired * prod(b)) instead of one uniform
        per seed position: at p = 0.1, block 7 only ~0.2 % of the seed positions fire.
        """
        full = self.seeds == "full"
        seed_shape = [n + b - 1 if full else n - b + 1 for n, b in zip(shape, self.block_size)]
        fired = _bernoulli_successes(
            math.prod(lead) * math.prod(seed_shape), self.gamma(p), x.device, self.generator
        )
        units_per_map = math.prod(shape)
        rest = fired
        flat = None
        for axis in reversed(range(self._k)):
            n, b, size = shape[axis], self.block_size[axis], seed_shape[axis]
            start = rest % size - (
                b - 1 if full else 0
            )  # first unit of the seed's block on this axis
            rest = torch.div(rest, size, rounding_mode="floor")
            # every seed's block meets the map, so clamping a clipped block's outside units onto
            # the border repaints units the block covers anyway: no validity mask is needed
            unit = (start[:, None] + torch.arange(b, device=x.device)).clamp_(0, n - 1)
            view = [-1] + [1] * self._k
            view[1 + axis] = b
            term = (unit * math.prod(shape[axis + 1 :])).reshape(view)
            flat = term if flat is None else flat + term
        assert flat is not None  # one term per spatial axis, and there is at least one
        flat = flat + (rest * units_per_map).reshape(
            [-1] + [1] * self._k
        )  # rest: the (sample, channel) index
        keep = torch.full((math.prod(lead) * units_per_map,), fill, dtype=x.dtype, device=x.device)
        keep.index_fill_(0, flat.reshape(-1), 0.0)
        return keep.reshape(*lead, *shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects a tensor, got {type(x).__name__}")
        if x.dim() != self._k + 2:
            raise ValueError(
                f"{type(self).__name__} expects a {self._k + 2}-D input "
                f"(N, C, {self._spatial_names}), got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a floating-point input, got {x.dtype}")
        p = self.p
        if not self.training or p == 0.0 or x.numel() == 0:
            return x
        shape = self._check_shape(tuple(x.shape[2:]))
        lead = (x.shape[0], 1 if self.share_channels else x.shape[1])
        if not self.overlapping:
            return x * (self._kept_tiles(x, lead, shape, p) * (1.0 / (1.0 - p))).to(x.dtype)
        full = self.seeds == "full"  # then every unit has |W(u)| = prod(b): one exact factor
        scale = (
            1.0 / math.exp(math.prod(self.block_size) * math.log1p(-self.gamma(p))) if full else 1.0
        )
        if self._use_sparse(x, lead, shape, p):
            mask = self._kept_sparse(x, lead, shape, p, fill=scale)
        else:
            mask = (1.0 - self._dropped_overlapping(x, lead, shape, p)).to(x.dtype) * scale
        return x * (mask if full else mask * self._inverse_keep(shape, p, x))


def _bernoulli_successes(
    trials: int, prob: float, device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """Sorted int64 indices of the successes among ``trials`` i.i.d. Bernoulli(prob) trials.

    Gaps between successes are Geometric(prob): ``floor(log(U) / log(1 - prob))`` failures with
    U uniform in (0, 1] (float64, so the tail is exact to ~2^-53), drawn in batches sized to cover
    all trials with overwhelming probability; a further batch is drawn in the rare other case.
    """
    if prob <= 0.0 or trials == 0:
        return torch.zeros(0, dtype=torch.int64, device=device)
    log_q = math.log1p(-prob)
    expected = trials * prob
    chunks, position = [], -1
    while position < trials:
        count = int(expected + 8.0 * math.sqrt(expected) + 16)
        u = 1.0 - torch.rand(count, dtype=torch.float64, device=device, generator=generator)
        gaps = torch.floor(torch.log(u) / log_q).clamp(max=float(trials)).to(torch.int64) + 1
        positions = position + torch.cumsum(gaps, 0)
        chunks.append(positions)
        position = int(positions[-1])
    positions = torch.cat(chunks)
    return positions[positions < trials]


def _memory_format(x: torch.Tensor, k: int) -> torch.memory_format:
    if (
        k == 2
        and x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    if (
        k == 3
        and x.dim() == 5
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last_3d)
    ):
        return torch.channels_last_3d
    return torch.contiguous_format


class DropBlock2d(_DropBlockNd):
    """DropBlock on (N, C, H, W) feature maps, unbiased unit by unit (see the module docstring).

    Args:
        block_size: block height and width (an int or a pair; even sizes and blocks larger than
            the map are allowed with ``seeds="full"`` and with ``overlapping=False``).
        p: drop probability in [0, 1) (torchvision's convention); give ``p`` or ``theta``.
        theta: retain probability ``1 - p`` in (0, 1] (the paper's convention).
        overlapping: True: seeds and overlapping blocks clipped at the borders (original
            DropBlock); False: the paper's non-overlapping tiles.
        seeds: ``"full"`` (every block meeting the map; all units dropped with probability p) or
            ``"valid"`` (blocks inside the map; border units dropped less, rescaled exactly).
            Only for ``overlapping=True``.
        random_offset: non-overlapping tiles shifted by a random offset per mask (False: tiles
            start at the top-left corner). Only for ``overlapping=False``.
        share_channels: one mask per sample shared by its channels (default: independent masks).
        warmup_steps, warmup: drop-rate warm-up (``"linear"`` or ``"cosine"``) over that many
            calls of :meth:`step` (see :mod:`structdrop.torch.schedules`); 0 = none.
        generator: a ``torch.Generator`` on the input's device (default: torch's global one).
        sampler: how overlapping masks are drawn, the law being the same: ``"dense"`` (one
            uniform per seed position, separable max-pool; no host synchronisation, the choice on
            accelerators), ``"sparse"`` (only the firing seeds, by geometric gaps, painted by index;
            needs the number of firing seeds on the host) or ``"auto"``: sparse on the CPU when
            the blocks are expected to cover at most half the map, dense otherwise.

    In eval mode (and at p = 0) the layer returns its input. The output keeps the input's memory
    format (channels_last included). :meth:`mask_moments` gives the exact law; its expected
    regulariser for a linear readout is :func:`structdrop.torch.dropblock_conv_regularizer`.

    Raises:
        ValueError: not exactly one of ``p`` and ``theta``, a value out of range, an unknown
            ``seeds`` or ``sampler``, ``random_offset`` with ``overlapping=True``; in
            :meth:`forward`, an input that is not (N, C, H, W) or a block that does not fit it.
        TypeError: a ``generator`` that is not a ``torch.Generator``.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> layer = sdt.DropBlock2d(3, p=0.1)
        >>> layer(torch.ones(2, 4, 8, 8)).shape
        torch.Size([2, 4, 8, 8])
    """

    _k = 2
    _spatial_names = "H, W"


class DropBlock3d(_DropBlockNd):
    """DropBlock on (N, C, D, H, W) volumes; the arguments are those of :class:`DropBlock2d`.

    Raises:
        ValueError, TypeError: as :class:`DropBlock2d`.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> layer = sdt.DropBlock3d((1, 2, 2), theta=0.9)
        >>> layer(torch.ones(2, 3, 4, 4, 4)).shape
        torch.Size([2, 3, 4, 4, 4])
    """

    _k = 3
    _spatial_names = "D, H, W"

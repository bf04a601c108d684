"""Exact per-unit drop rates of common DropBlock rules on a 2-D map, next to structdrop's.

Every rule drops unit u when one of the seeds whose block covers it fires, seeds being
independent Bernoulli(gamma); so the drop rate of u is exactly ``1 - (1 - gamma)^|W(u)|`` with
``|W(u)|`` the number of seed positions covering u. Nothing is sampled: the maps are computed from
each rule's seed rate and geometry, re-derived here from their published code (reimplemented, not
imported; neither package is needed):

- torchvision ``torchvision.ops.drop_block2d`` (pytorch/vision, ``torchvision/ops/drop_block.py``
  at commit 2901effa; the rule is unchanged since the op was added in torchvision 0.12):
  ``gamma = p H W / (b^2 (H - b + 1)(W - b + 1))``, seeds only where the whole b x b block fits
  (the ``(H - b + 1) x (W - b + 1)`` noise, padded by ``b // 2`` and max-pooled with kernel ``b``,
  padding ``b // 2``), then one batch-wide rescaling ``numel / sum(mask)``. An even ``b`` makes the
  mask one row and column too large (a shape error), ``b > H`` an empty noise tensor.
- timm ``timm.layers.DropBlock2d`` / ``drop_block_2d``, the rule of timm 1.0.23 and later
  (``timm/layers/drop.py`` of the 1.0.23 and 1.0.31 wheels, which are identical):
  ``kh, kw = min(b, H), min(b, W)``, ``gamma = p H W / (kh kw) / ((H - kh + 1)(W - kw + 1))``, a
  seed at EVERY unit, blocks by max-pooling with kernel ``(kh, kw)`` and padding
  ``(kh // 2, kw // 2)``, the extra row/column of an even kernel cropped at the start, so a seed
  at s drops units ``s - k // 2 .. s + (k - 1) // 2`` per axis (clipped at the borders), and the
  same batch-wide rescaling. The seed rate assumes seeds only where a block fits, so units are
  dropped far more often than ``p`` on small maps; even blocks and blocks larger than the map run.
  timm up to 1.0.22 (the wheels of 0.9.16, 1.0.3 and 1.0.22: the same ``drop_block_fast_2d``,
  the default ``fast=True``) clipped the block to the smaller side, kept ``b`` itself in
  ``(W - b + 1)(H - b + 1)`` and did not crop: an even block was a shape error and a block larger
  than the map a division by zero or a negative seed rate. Only the current rule is computed.

The batch-wide factor ``numel / sum(mask)`` tends to ``1 / mean_u(1 - drop_u)`` for large
batches, so the expected gain of unit u (E[output] / input) under those rules tends to
``(1 - drop_u) / mean_u(1 - drop_u)``: units are not rescaled by their own keep probability.
structdrop's layers have gain exactly 1 at every unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._blocks import seed_probability
from .._results import ResultEquality
from .._validation import as_int, as_probability

__all__ = ["MaskStatistics", "mask_statistics"]

RULES = ("structdrop", "structdrop-valid", "torchvision", "timm")
_LABELS = {
    "structdrop": "structdrop DropBlock2d (seeds='full')",
    "structdrop-valid": "structdrop DropBlock2d (seeds='valid')",
    "torchvision": "torchvision drop_block2d",
    "timm": "timm DropBlock2d (1.0.23+)",
}


def _window_counts(
    n: int, lo_offset: int, hi_offset: int, seed_lo: int, seed_hi: int
) -> np.ndarray:
    """Per unit u of an axis: how many seeds s in [seed_lo, seed_hi] have u - s in [lo_offset,
    hi_offset]."""
    u = np.arange(n)
    return np.clip(
        np.minimum(u - lo_offset, seed_hi) - np.maximum(u - hi_offset, seed_lo) + 1, 0, None
    )


def _drop_map(gamma: float, counts: list[np.ndarray]) -> np.ndarray:
    cover = np.multiply.outer(counts[0], counts[1]).astype(np.float64)
    return -np.expm1(cover * math.log1p(-gamma)) if gamma < 1 else (cover > 0).astype(np.float64)


def _structdrop_map(shape: tuple[int, int], b: int, p: float, seeds: str) -> np.ndarray:
    gamma = seed_probability(b * b, drop_rate=p)
    if seeds == "full":
        counts = [_window_counts(n, 0, b - 1, 1 - b, n - 1) for n in shape]
    else:
        counts = [_window_counts(n, 0, b - 1, 0, n - b) for n in shape]
    return _drop_map(gamma, counts)


def _torchvision_map(shape: tuple[int, int], b: int, p: float) -> tuple[np.ndarray | None, str]:
    H, W = shape
    if b % 2 == 0:
        return None, "even block: mask shape != input shape (error)"
    if b > min(H, W):
        return None, "block larger than the map: empty noise tensor (error)"
    gamma = p * H * W / (b**2 * (H - b + 1) * (W - b + 1))
    if gamma > 1:
        return None, f"seed rate {gamma:.3g} > 1: bernoulli_ error"
    # noise index i sits at padded index i + b//2; the pool window of output o covers padded
    # indices [o - b//2, o + b//2], so seed i drops units i .. i + b - 1 (inside the map)
    return _drop_map(gamma, [_window_counts(n, 0, b - 1, 0, n - b) for n in shape]), ""


def _timm_map(shape: tuple[int, int], b: int, p: float) -> tuple[np.ndarray | None, str]:
    H, W = shape
    kernel = (min(b, H), min(b, W))
    # <= p < 1: k (n - k + 1) >= n for 1 <= k <= n per axis, so this rule always runs
    gamma = p * H * W / (kernel[0] * kernel[1]) / ((H - kernel[0] + 1) * (W - kernel[1] + 1))
    # a seed at every unit s drops s - k // 2 .. s + (k - 1) // 2 (an even kernel's pooled map is
    # one longer and cropped at the start), clipped at the borders
    counts = [_window_counts(n, -(k // 2), (k - 1) // 2, 0, n - 1) for n, k in zip(shape, kernel)]
    return _drop_map(gamma, counts), ""


@dataclass(frozen=True, eq=False)
class MaskStatistics(ResultEquality):
    """Exact per-unit drop rates of several DropBlock rules on one map
    (see :func:`mask_statistics`).

    Attributes:
        spatial_shape, block_size, p: the setting.
        drop_rates: rule -> (H, W) array of exact drop probabilities (absent when the rule fails).
        failures: rule -> why the rule cannot run in this setting (the error its code raises).

    Example:
        >>> import structdrop.torch as sdt
        >>> stats = sdt.mask_statistics((5, 5), block_size=3, p=0.1)
        >>> round(float(stats.drop_rates["structdrop"].mean()), 12)
        0.1
    """

    spatial_shape: tuple[int, int]
    block_size: int
    p: float
    drop_rates: dict[str, np.ndarray] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def gain(self, rule: str) -> np.ndarray:
        """E[output]/input per unit: 1 for structdrop; the large-batch limit for batch-normalised
        rules.

        Returns:
            An (H, W) array.

        Raises:
            KeyError: ``rule`` was not computed (see :attr:`drop_rates`).

        Example:
        >>> import structdrop.torch as sdt
        >>> stats = sdt.mask_statistics((5, 5), block_size=3, p=0.1)
        >>> float(stats.gain("structdrop").max())
        1.0
        """
        drop = self.drop_rates[rule]
        if rule.startswith("structdrop"):
            return np.ones_like(drop)
        keep = 1.0 - drop
        return keep / keep.mean()

    def _stats(self, rule: str) -> dict[str, float]:
        """Centre and corner drop rates, min/mean/max, ``max |gain - 1|`` of one computed rule."""
        H, W = self.spatial_shape
        drop = self.drop_rates[rule]
        return {
            "centre": float(drop[H // 2, W // 2]),
            "corner": float(drop[0, 0]),
            "min": float(drop.min()),
            "mean": float(drop.mean()),
            "max": float(drop.max()),
            "max_gain_error": float(np.abs(self.gain(rule) - 1.0).max()),
        }

    def rows(self) -> list[dict[str, object]]:
        """One dict per rule: interior (centre) and corner drop rates, min/mean/max,
        ``max |gain - 1|``; for a rule that failed, its error message instead.

        Returns:
            A list of dicts, one per rule computed or failed, each with a ``"rule"`` label.

        Raises:
            Nothing: every rule in the result has its rates or its error.

        Example:
        >>> import structdrop.torch as sdt
        >>> stats = sdt.mask_statistics((5, 5), block_size=3, p=0.1)
        >>> stats.rows()[0]["rule"], round(stats.rows()[0]["mean"], 12)
        ("structdrop DropBlock2d (seeds='full')", 0.1)
        """
        rows: list[dict[str, object]] = []
        for rule in RULES:
            if rule in self.failures:
                rows.append({"rule": _LABELS[rule], "error": self.failures[rule]})
            elif rule in self.drop_rates:
                rows.append({"rule": _LABELS[rule], **self._stats(rule)})
        return rows

    def table(self) -> str:
        """A markdown table of :meth:`rows` (drop rates in percent).

        Returns:
            The table as a string, headed by the setting.

        Raises:
            Nothing: every rule in the result has its rates or its error.

        Example:
        >>> import structdrop.torch as sdt
        >>> stats = sdt.mask_statistics((5, 5), block_size=3, p=0.1)
        >>> stats.table().splitlines()[0]
        '5 x 5 map, block 3, requested p = 0.1'
        """
        head = (
            f"{self.spatial_shape[0]} x {self.spatial_shape[1]} map, block {self.block_size}, "
            f"requested p = {self.p:g}\n\n"
        )
        lines = [
            "| rule | centre | corner | min | mean | max | max abs(gain - 1) |",
            "|---|---|---|---|---|---|---|",
        ]
        for rule in RULES:
            if rule in self.failures:
                lines.append(f"| {_LABELS[rule]} | {self.failures[rule]} | | | | | |")
                continue
            if rule not in self.drop_rates:
                continue
            stats = self._stats(rule)
            cells = [f"{100 * stats[k]:.2f} %" for k in ("centre", "corner", "min", "mean", "max")]
            lines.append(
                f"| {_LABELS[rule]} | " + " | ".join(cells) + f" | {stats['max_gain_error']:.3f} |"
            )
        return head + "\n".join(lines)

    def figure(self):
        """A matplotlib Figure: one heat map of the per-unit drop rate per rule (needs
        matplotlib).

        Returns:
            A ``matplotlib.figure.Figure`` (not attached to pyplot).

        Raises:
            ImportError: matplotlib is not installed.
            ValueError: no rule could run in this setting.

        Example:
        >>> import structdrop.torch as sdt
        >>> stats = sdt.mask_statistics((5, 5), block_size=3, p=0.1)
        >>> fig = stats.figure()  # doctest: +SKIP
        """
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
            raise ImportError(
                "MaskStatistics.figure needs matplotlib: pip install 'structdrop[plot]'"
            ) from exc
        rules = [r for r in RULES if r in self.drop_rates]
        if not rules:
            raise ValueError("no rule could run in this setting: nothing to draw")
        vmax = max(float(self.drop_rates[r].max()) for r in rules)
        fig = Figure(figsize=(3.2 * len(rules) + 0.8, 3.4), layout="constrained")
        axes = fig.subplots(1, len(rules), squeeze=False)[0]
        image = None
        for ax, rule in zip(axes, rules):
            image = ax.imshow(self.drop_rates[rule], vmin=0.0, vmax=vmax, cmap="viridis")
            ax.set_title(_LABELS[rule].replace(" (", "\n("), fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(image, ax=list(axes), label="P(unit dropped)")
        fig.suptitle(
            f"{self.spatial_shape[0]}x{self.spatial_shape[1]} map, block {self.block_size}, "
            f"requested p = {self.p:g}",
            fontsize=10,
        )
        return fig


def mask_statistics(
    spatial_shape: tuple[int, int] = (7, 7), block_size: int = 3, p: float = 0.1
) -> MaskStatistics:
    """Exact per-unit drop rates of structdrop's, torchvision's and timm's DropBlock rules.

    Args:
        spatial_shape: (H, W) of the feature map.
        block_size: the (square) block size all rules are given.
        p: the requested drop probability, in [0, 1).

    Returns:
        A :class:`MaskStatistics` (``.table()``, ``.figure()``, ``.drop_rates``, ``.gain(rule)``).
        Computed exactly from each rule's seed rate and block geometry (see the module docstring
        for the sources), not sampled. ``structdrop-valid`` is omitted when the block does not fit.

    Raises:
        ValueError: ``spatial_shape`` is not a pair of positive ints, ``block_size`` < 1, or ``p``
            outside [0, 1). A rule that cannot run in the setting does not raise: its error is in
            :attr:`MaskStatistics.failures`.

    Example:
        >>> import structdrop.torch as sdt
        >>> stats = sdt.mask_statistics((5, 5), block_size=3, p=0.1)
        >>> sorted(stats.drop_rates)[:2]
        ['structdrop', 'structdrop-valid']
    """
    if not isinstance(spatial_shape, (tuple, list)) or len(spatial_shape) != 2:
        raise ValueError(f"spatial_shape must be (H, W), got {spatial_shape!r}")
    shape = (
        as_int("spatial_shape[0]", spatial_shape[0], minimum=1),
        as_int("spatial_shape[1]", spatial_shape[1], minimum=1),
    )
    b = as_int("block_size", block_size, minimum=1)
    p = as_probability("p", p, low_open=False, high_open=True)
    rates: dict[str, np.ndarray] = {"structdrop": _structdrop_map(shape, b, p, "full")}
    failures: dict[str, str] = {}
    if b <= min(shape):
        rates["structdrop-valid"] = _structdrop_map(shape, b, p, "valid")
    for rule, fn in (("torchvision", _torchvision_map), ("timm", _timm_map)):
        drop, why = fn(shape, b, p)
        if drop is None:
            failures[rule] = why
        else:
            rates[rule] = drop
    return MaskStatistics(shape, b, p, rates, failures)

"""Normalised description of a mask scheme, shared by the torch objectives and batched training.

The torch path accepts the scheme objects of :mod:`structdrop.schemes` (``NoDropout()``,
``Dropout(theta)``, ``DropBlock(block_size, theta=...)``,
``OverlappingDropBlock(block_size, theta=... or gamma=...)``, ``DropConnect(theta)``). It reads
only their public attributes, so it does not import
:mod:`structdrop.schemes` (and any object with the same class name and attributes is accepted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._blocks import check_block_width, seed_probability
from .._validation import as_int, as_probability

__all__ = ["SchemeSpec", "as_scheme_spec", "overlapping_gamma", "strength"]

_KINDS = ("none", "dropout", "dropblock", "overlapping", "dropconnect")


@dataclass(frozen=True)
class SchemeSpec:
    """A mask scheme reduced to numbers.

    Attributes:
        kind: one of ``"none"``, ``"dropout"``, ``"dropblock"``, ``"overlapping"``,
            ``"dropconnect"``.
        theta: retain probability (dropout, dropblock, dropconnect; 1.0 for none; the nominal
            ``(1 - gamma)**block_size`` for overlapping).
        block_size: block length r (1 unless dropblock/overlapping).
        gamma: seed probability of the overlapping scheme (0.0 otherwise).

    Example:
        >>> import structdrop.torch as sdt
        >>> spec = sdt.SchemeSpec("dropblock", 0.5, 5)
        >>> spec.beta
        1.0
    """

    kind: str
    theta: float = 1.0
    block_size: int = 1
    gamma: float = 0.0

    @property
    def beta(self) -> float:
        """(1 - theta)/theta."""
        return (1.0 - self.theta) / self.theta


def strength(p: object, theta: object) -> tuple[float, float]:
    """(drop, keep) probabilities from exactly one of ``p`` (drop, [0, 1), ``torch.nn.Dropout``'s
    convention) and ``theta`` (keep, (0, 1], the paper's); the one given is kept exactly."""
    if (p is None) == (theta is None):
        raise ValueError("give exactly one of p (drop probability) and theta (retain probability)")
    if p is not None:
        drop = as_probability("p", p, low_open=False, high_open=True)
        return drop, 1.0 - drop
    keep = as_probability("theta", theta)
    return 1.0 - keep, keep


def overlapping_gamma(block_size: int, gamma: object = None, theta: object = None) -> float:
    """Seed probability gamma of overlapping DropBlock from ``gamma`` or ``theta``.

    Exactly one of ``gamma`` (in [0, 1)) and ``theta`` (in (0, 1]) must be given; ``theta`` sets
    ``(1 - gamma)**block_size = theta``, i.e. an interior unit is kept with probability ``theta``.
    """
    if (gamma is None) == (theta is None):
        raise ValueError("give exactly one of gamma and theta")
    if gamma is not None:
        return as_probability("gamma", gamma, low_open=False, high_open=True)
    return seed_probability(block_size, theta=as_probability("theta", theta))


def as_scheme_spec(scheme: object) -> SchemeSpec:
    """Reduce a :mod:`structdrop.schemes` object (or a SchemeSpec) to a :class:`SchemeSpec`."""
    if isinstance(scheme, SchemeSpec):
        if scheme.kind not in _KINDS:
            raise ValueError(f"scheme.kind must be one of {_KINDS}, got {scheme.kind!r}")
        return scheme
    core_params = getattr(scheme, "_core_params", None)
    if callable(core_params):  # structdrop.schemes: a _core.SchemeParams, gamma resolved
        params = core_params()
        names = {  # _core.SchemeKind's names -> this module's
            "none": "none",
            "dropout": "dropout",
            "dropblock": "dropblock",
            "overlapping_dropblock": "overlapping",
            "dropconnect": "dropconnect",
        }
        core_kind = getattr(params.kind, "name", None)
        if core_kind not in names:
            raise ValueError(
                f"unknown scheme kind {params.kind!r} from {type(scheme).__name__}._core_params()"
            )
        kind = names[core_kind]
        theta, gamma = params.theta, params.gamma
        r = as_int("scheme.block_size", params.block_size, minimum=1)
        if kind == "overlapping":
            g = as_probability("scheme.gamma", gamma, low_open=False, high_open=True)
            return SchemeSpec(kind, (1.0 - g) ** r, r, g)
        if kind == "none":
            return SchemeSpec(kind)
        return SchemeSpec(kind, as_probability("scheme.theta", theta), r)
    name = type(scheme).__name__
    duck: Any = scheme  # recognised by its class name: read its public attributes
    if name == "NoDropout":
        return SchemeSpec("none")
    if name == "Dropout":
        return SchemeSpec("dropout", as_probability("scheme.theta", duck.theta))
    if name == "DropConnect":
        return SchemeSpec("dropconnect", as_probability("scheme.theta", duck.theta))
    if name == "DropBlock":
        r = as_int("scheme.block_size", duck.block_size, minimum=1)
        return SchemeSpec("dropblock", as_probability("scheme.theta", duck.theta), r)
    if name == "OverlappingDropBlock":
        r = as_int("scheme.block_size", duck.block_size, minimum=1)
        gamma = getattr(scheme, "gamma", None)
        theta = getattr(scheme, "theta", None)
        if gamma is None:
            gamma = overlapping_gamma(r, theta=theta)
        gamma = as_probability("scheme.gamma", gamma, low_open=False, high_open=True)
        return SchemeSpec("overlapping", (1.0 - gamma) ** r, r, gamma)
    raise TypeError(
        "scheme must be a structdrop.schemes object (NoDropout, Dropout, DropBlock, "
        f"OverlappingDropBlock, DropConnect), got {type(scheme).__name__}"
    )


def check_width(spec: SchemeSpec, d: int) -> None:
    """Raise ValueError when the scheme cannot act on ``d`` hidden units."""
    if spec.kind in ("dropblock", "overlapping"):
        overlapping = spec.kind == "overlapping"
        check_block_width(
            d,
            spec.block_size,
            overlapping=overlapping,
            owner="OverlappingDropBlock" if overlapping else "DropBlock",
            width_name="the hidden width d",
        )


def cover_counts(d: int, block_size: int) -> list[int]:
    """|W(i)|: how many seed positions' blocks cover unit i (overlapping DropBlock)."""
    last = d - block_size
    return [min(i, last) - max(0, i - block_size + 1) + 1 for i in range(d)]

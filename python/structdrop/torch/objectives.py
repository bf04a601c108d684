"""Differentiable deterministic objectives of dropout schemes (Lemma 1, Lemma 10, corrected Thm 13).

Shapes follow the paper: targets ``Y`` (a x N), last-layer weight ``U`` (a x d), features ``G``
(d x N; for a linear network ``G = V^T X``), ``V`` (b x d), inputs ``X`` (b x N). A PyTorch
layer ``nn.Linear(d, a)`` has ``weight = U``; batch-first features ``f`` (N x d) give ``G = f.T``
(a view, no copy). Every function returns a 0-dim tensor on the inputs' device and dtype and is
differentiable in all tensor arguments, so it can replace mask sampling as an explicit regulariser.
The values equal ``E_z ||Y - U diag(mu)^-1 diag(z) G||_F^2`` exactly (sums over all N columns, not
means), and agree with the NumPy/C++ versions in :mod:`structdrop.schemes` to rounding.
"""

from __future__ import annotations

import math

import torch

from .._blocks import check_block_width
from .._migration import renamed_keywords
from .._validation import as_int, as_probability
from ._orders import reordered, shapes_match
from ._schemes import SchemeSpec, as_scheme_spec, check_width, overlapping_gamma

__all__ = [
    "characteristic_matrix",
    "dropblock_regularizer",
    "dropconnect_regularizer",
    "dropout_regularizer",
    "feature_objective",
    "generalized_objective",
    "generalized_regularizer",
    "objective",
    "overlapping_dropblock_regularizer",
    "regularizer",
    "squared_error",
]


def _tensor(name: str, value: object, ndim: int, like: torch.Tensor | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)  # NumPy arrays are shared, not copied
        except Exception as exc:
            raise TypeError(f"{name} must be a tensor or array: {exc}") from None
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if value.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(value.shape)}")
    if like is not None and (value.dtype != like.dtype or value.device != like.device):
        raise TypeError(
            f"{name} must have the dtype and device of the other arguments "
            f"({like.dtype}, {like.device}), got ({value.dtype}, {value.device})"
        )
    return value


def _network(U: object, V: object, X: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """U (a x d), V (b x d) and X (b x N) as tensors of one dtype and device, shapes checked."""
    U = _tensor("U", U, 2)
    V = _tensor("V", V, 2, U)
    X = _tensor("X", X, 2, U)
    if V.shape[1] != U.shape[1] or V.shape[0] != X.shape[0]:
        raise ValueError(
            f"U is a x d, V is b x d and X is b x N: got U {tuple(U.shape)}, V {tuple(V.shape)}, X "
            f"{tuple(X.shape)}"
        )
    return U, V, X


def _check_pair(U: torch.Tensor, G: torch.Tensor, gname: str = "G") -> None:
    if U.shape[1] != G.shape[0]:
        raise ValueError(
            f"U is a x d and {gname} is d x N: got U {tuple(U.shape)}, {gname} {tuple(G.shape)}"
        )


# Y is a x N, U a x d, G d x N, V b x d, X b x N: the dimensions the old orders are told by.
_FEATURE_SHAPES = shapes_match(("Y", 0, "U", 0), ("Y", 1, "G", 1), ("U", 1, "G", 0))
_NETWORK_SHAPES = shapes_match(
    ("Y", 0, "U", 0), ("Y", 1, "X", 1), ("U", 1, "V", 1), ("V", 0, "X", 0)
)


@reordered("squared_error", 0, ("G", "Y", "U"), ("Y", "U", "G"), _FEATURE_SHAPES)
def squared_error(G: torch.Tensor, Y: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """||Y - U G||_F^2, the fit of the features ``G`` (d x N) through ``U`` (a x d) to ``Y``.

    The order before 1.0, ``squared_error(Y, U, G)``, is accepted with a FutureWarning where the
    shapes prove it.

    Returns:
        A 0-dim tensor on the inputs' device and dtype, differentiable in every argument.

    Raises:
        TypeError: an argument is not a floating-point tensor (or array), dtypes or devices
            differ, or an old-order call whose shapes fit both orders.
        ValueError: the shapes do not agree.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> G, Y, U = torch.ones(2, 3), torch.zeros(1, 3), torch.ones(1, 2)
        >>> float(sdt.squared_error(G, Y, U))
        12.0
    """
    return _squared_error(G, Y, U)


def _squared_error(G: torch.Tensor, Y: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    # the new order without the old-order check: the package's own calls are never ambiguous
    U = _tensor("U", U, 2)
    G = _tensor("G", G, 2, U)
    Y = _tensor("Y", Y, 2, U)
    _check_pair(U, G)
    if Y.shape != (U.shape[0], G.shape[1]):
        raise ValueError(f"Y must be a x N = {(U.shape[0], G.shape[1])}, got {tuple(Y.shape)}")
    return (Y - U @ G).square().sum()


def generalized_regularizer(U: torch.Tensor, G: torch.Tensor, cbar: torch.Tensor) -> torch.Tensor:
    """<C-bar, U^T U * G G^T> (Lemma 10, eq. 17-18) for a d x d characteristic matrix ``cbar``.

    Returns:
        A 0-dim tensor, differentiable in every argument.

    Raises:
        TypeError: an argument is not a floating-point tensor, or dtypes/devices differ.
        ValueError: the shapes do not agree.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> U, G = torch.ones(1, 2), torch.ones(2, 3)
        >>> float(sdt.generalized_regularizer(U, G, torch.eye(2)))
        6.0
    """
    U = _tensor("U", U, 2)
    G = _tensor("G", G, 2, U)
    cbar = _tensor("cbar", cbar, 2, U)
    _check_pair(U, G)
    d = U.shape[1]
    if cbar.shape != (d, d):
        raise ValueError(f"cbar must be d x d = {(d, d)}, got {tuple(cbar.shape)}")
    return (cbar * (U.T @ U) * (G @ G.T)).sum()


@reordered("generalized_objective", 0, ("G", "Y", "U"), ("Y", "U", "G"), _FEATURE_SHAPES)
def generalized_objective(
    G: torch.Tensor, Y: torch.Tensor, U: torch.Tensor, mean: torch.Tensor, covariance: torch.Tensor
) -> torch.Tensor:
    """E_z ||Y - U diag(mean)^-1 diag(z) G||_F^2 for masks z with the given mean and covariance
    (Lemma 10).

    Equals ``||Y - U G||^2 + <C-bar, U^T U * G G^T>`` with
    ``C-bar = diag(mean)^-1 covariance diag(mean)^-1``; every entry of ``mean`` must be non-zero.
    The order before 1.0, ``generalized_objective(Y, U, G, mean, covariance)``, is accepted with a
    FutureWarning where the shapes prove it.

    Returns:
        A 0-dim tensor, differentiable in every argument.

    Raises:
        TypeError: an argument is not a floating-point tensor, dtypes/devices differ, or an
            old-order call whose shapes fit both orders.
        ValueError: the shapes do not agree, or ``mean`` has a zero entry.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> G, Y, U = torch.ones(2, 3), torch.zeros(1, 3), torch.ones(1, 2)
        >>> mean, cov = torch.full((2,), 0.5), 0.25 * torch.eye(2)
        >>> float(sdt.generalized_objective(G, Y, U, mean, cov))
        18.0
    """
    U = _tensor("U", U, 2)
    mean = _tensor("mean", mean, 1, U)
    covariance = _tensor("covariance", covariance, 2, U)
    d = U.shape[1]
    if mean.shape != (d,) or covariance.shape != (d, d):
        raise ValueError(f"mean must have d = {d} entries and covariance be d x d")
    if bool((mean == 0).any()):
        raise ValueError(
            "mean must have no zero entry (a unit that is never kept cannot be rescaled)"
        )
    inv = 1.0 / mean
    cbar = inv[:, None] * covariance * inv[None, :]
    return _squared_error(G, Y, U) + generalized_regularizer(U, G, cbar)


def dropout_regularizer(U: torch.Tensor, G: torch.Tensor, theta: float) -> torch.Tensor:
    """Dropout: beta sum_i ||u_i||^2 ||g^i||^2, beta = (1 - theta)/theta (eq. 19; eq. 5 with
    r = 1).

    Returns:
        A 0-dim tensor, differentiable in ``U`` and ``G``.

    Raises:
        TypeError: ``U`` or ``G`` is not a floating-point tensor, or their dtypes/devices differ.
        ValueError: ``theta`` outside (0, 1], or the shapes do not agree.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> float(sdt.dropout_regularizer(torch.ones(1, 2), torch.ones(2, 3), 0.5))
        6.0
    """
    th = as_probability("theta", theta)
    U = _tensor("U", U, 2)
    G = _tensor("G", G, 2, U)
    _check_pair(U, G)
    return ((1.0 - th) / th) * (U.square().sum(0) * G.square().sum(1)).sum()


def dropblock_regularizer(
    U: torch.Tensor, G: torch.Tensor, theta: float, block_size: int
) -> torch.Tensor:
    """DropBlock, non-overlapping blocks (Lemma 1): beta sum_blocks ||U_i G_i||_F^2.

    Computed as ``beta sum_i <U_i^T U_i, G_i G_i^T>`` (r x r Gram matrices per block: O((a + N) d r)
    instead of O(a d N)).

    Returns:
        A 0-dim tensor, differentiable in ``U`` and ``G``.

    Raises:
        TypeError: ``U`` or ``G`` is not a floating-point tensor, or their dtypes/devices differ.
        ValueError: ``theta`` outside (0, 1], ``block_size`` < 1 or not dividing d, or the shapes
            do not agree.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> float(sdt.dropblock_regularizer(torch.ones(1, 2), torch.ones(2, 3), 0.5, 2))
        12.0
    """
    th = as_probability("theta", theta)
    r = as_int("block_size", block_size, minimum=1)
    U = _tensor("U", U, 2)
    G = _tensor("G", G, 2, U)
    _check_pair(U, G)
    d = U.shape[1]
    check_block_width(d, r, overlapping=False, owner="DropBlock", width_name="the hidden width d")
    k = d // r
    Ub = U.reshape(U.shape[0], k, r).permute(1, 0, 2)  # k x a x r
    Gb = G.reshape(k, r, G.shape[1])  # k x r x N
    gram_u = Ub.transpose(1, 2) @ Ub
    gram_g = Gb @ Gb.transpose(1, 2)
    return ((1.0 - th) / th) * (gram_u * gram_g).sum()


def _overlap_cbar(
    d: int, r: int, gamma: float, dtype: torch.dtype, device: torch.device | str | None
) -> torch.Tensor:
    # C-bar_ij = P(z_i = z_j = 1)/(mu_i mu_j) - 1 = (1 - gamma)^(-|W(i) & W(j)|) - 1,
    # W(i) = seed positions [max(0, i - r + 1), min(i, d - r)] whose block covers unit i.
    i = torch.arange(d, dtype=torch.int64)
    lo = (i - r + 1).clamp(min=0)
    hi = i.clamp(max=d - r)
    overlap = (
        torch.minimum(hi[:, None], hi[None, :]) - torch.maximum(lo[:, None], lo[None, :]) + 1
    ).clamp(min=0)
    # (1 - gamma)^(-k) - 1 as expm1(-k log1p(-gamma)): the C++ kernel's form, exact for small gamma
    # where pow(1 - gamma, -k) - 1 cancels.
    cbar = torch.expm1(overlap.to(torch.float64) * -math.log1p(-gamma))
    return cbar.to(dtype=dtype, device=device)


def overlapping_dropblock_regularizer(
    U: torch.Tensor,
    G: torch.Tensor,
    block_size: int,
    gamma: float | None = None,
    theta: float | None = None,
) -> torch.Tensor:
    """Overlapping (original) DropBlock, exact through Lemma 10.

    Seeds at positions 0..d-r fire with probability ``gamma`` (or ``(1-gamma)^r = theta``) and each
    unit is rescaled by its exact keep probability, as :class:`OverlappingDropBlock1d`. Then
    ``C-bar_ij = (1 - gamma)^(-|W(i) & W(j)|) - 1``, banded with half-width r - 1. This is the exact
    objective, not the paper's approximate theta correction of Section 5.3.

    Returns:
        A 0-dim tensor, differentiable in ``U`` and ``G``.

    Raises:
        TypeError: ``U`` or ``G`` is not a floating-point tensor, or their dtypes/devices differ.
        ValueError: not exactly one of ``gamma`` and ``theta``, a value out of range, a block
            longer than d, or the shapes do not agree.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> U, G = torch.ones(1, 2), torch.ones(2, 3)
        >>> float(sdt.overlapping_dropblock_regularizer(U, G, 2, gamma=0.5))
        12.0
    """
    r = as_int("block_size", block_size, minimum=1)
    g = overlapping_gamma(r, gamma, theta)
    U = _tensor("U", U, 2)
    d = U.shape[1]
    check_block_width(
        d, r, overlapping=True, owner="OverlappingDropBlock", width_name="the hidden width d"
    )
    return generalized_regularizer(U, G, _overlap_cbar(d, r, g, U.dtype, U.device))


@renamed_keywords("dropconnect_regularizer", G="X")
def dropconnect_regularizer(
    U: torch.Tensor, V: torch.Tensor, X: torch.Tensor, theta: float
) -> torch.Tensor:
    """DropConnect on V, exact: beta sum_i ||u_i||^2 sum_j V_ji^2 ||x^j||^2 (corrected Theorem 13).

    ``X`` is the b x N input of the masked layer (the network's input for a linear network; named
    ``G`` before 1.0, a name every other regulariser gives to ``V^T X``), ``V`` is b x d. The
    paper's Theorem 13 (beta sum_i ||u_i||^2 ||X^T v_i||^2) holds only when X X^T is diagonal.

    Returns:
        A 0-dim tensor, differentiable in ``U``, ``V`` and ``X``.

    Raises:
        TypeError: an argument is not a floating-point tensor, or dtypes/devices differ.
        ValueError: ``theta`` outside (0, 1], or the shapes do not agree.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> U, V, X = torch.ones(1, 2), torch.ones(3, 2), torch.ones(3, 4)
        >>> float(sdt.dropconnect_regularizer(U, V, X, 0.5))
        24.0
    """
    th = as_probability("theta", theta)
    U, V, X = _network(U, V, X)
    return ((1.0 - th) / th) * (
        U.square().sum(0) * (V.square() * X.square().sum(1)[:, None]).sum(0)
    ).sum()


def characteristic_matrix(
    scheme: object,
    d: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """C-bar = diag(mu)^-1 C diag(mu)^-1 of a unit-mask scheme on ``d`` units (Lemma 10, eq. 16).

    DropConnect masks weights, not units, so it has no d x d characteristic matrix (ValueError).

    Returns:
        A d x d tensor of ``dtype`` on ``device``.

    Raises:
        ValueError: a DropConnect scheme, ``d`` < 1, or a block size that does not fit ``d``.
        TypeError: ``scheme`` is not a scheme.

    Example:
        >>> import structdrop.torch as sdt
        >>> sdt.characteristic_matrix(sdt.SchemeSpec("dropblock", 0.5, 2), 4).tolist()[0]
        [1.0, 1.0, 0.0, 0.0]
    """
    spec = as_scheme_spec(scheme)
    d = as_int("d", d, minimum=1)
    check_width(spec, d)
    if spec.kind == "none":
        return torch.zeros(d, d, dtype=dtype, device=device)
    if spec.kind == "dropout":
        return spec.beta * torch.eye(d, dtype=dtype, device=device)
    if spec.kind == "dropblock":
        blocks = torch.arange(d, device=device) // spec.block_size
        return spec.beta * (blocks[:, None] == blocks[None, :]).to(dtype)
    if spec.kind == "overlapping":
        return _overlap_cbar(d, spec.block_size, spec.gamma, dtype, device)
    raise ValueError("DropConnect masks weights, not units: it has no d x d characteristic matrix")


def _unit_regularizer(spec: SchemeSpec, U: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    if spec.kind == "none":
        return (U.sum() * 0.0) + (G.sum() * 0.0)
    if spec.kind == "dropout":
        return dropout_regularizer(U, G, spec.theta)
    if spec.kind == "dropblock":
        return dropblock_regularizer(U, G, spec.theta, spec.block_size)
    return overlapping_dropblock_regularizer(U, G, spec.block_size, gamma=spec.gamma)


def regularizer(scheme: object, U: torch.Tensor, V: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """The regulariser that ``scheme`` induces on the network U V^T X (same
    as ``scheme.regularizer``).

    Unit-mask schemes act on the d hidden units ``G = V^T X``; DropConnect masks the entries of V.

    Returns:
        A 0-dim tensor, differentiable in ``U``, ``V`` and ``X``.

    Raises:
        TypeError: ``scheme`` is not a scheme, an array is not a floating-point tensor, or
            dtypes/devices differ.
        ValueError: the shapes do not agree, or a block size that does not fit d.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> U, V, X = torch.ones(1, 2), torch.ones(3, 2), torch.ones(3, 4)
        >>> float(sdt.regularizer(sdt.SchemeSpec("dropout", 0.5), U, V, X))
        72.0
    """
    spec = as_scheme_spec(scheme)
    U, V, X = _network(U, V, X)
    check_width(spec, U.shape[1])
    if spec.kind == "dropconnect":
        return dropconnect_regularizer(U, V, X, spec.theta)
    return _unit_regularizer(spec, U, V.T @ X)


@reordered("objective", 1, ("X", "Y", "U", "V"), ("Y", "U", "V", "X"), _NETWORK_SHAPES)
def objective(
    scheme: object, X: torch.Tensor, Y: torch.Tensor, U: torch.Tensor, V: torch.Tensor
) -> torch.Tensor:
    """Deterministic objective ||Y - U V^T X||^2 + regularizer(scheme, U, V, X) (same as
    ``scheme.objective``).

    Inputs before targets: ``X`` (b x N), ``Y`` (a x N), then the weights ``U`` (a x d) and ``V``
    (b x d). The order before 1.0, ``objective(scheme, Y, U, V, X)``, is accepted with a
    FutureWarning where the shapes prove it.

    Returns:
        A 0-dim tensor, differentiable in every tensor argument.

    Raises:
        TypeError: ``scheme`` is not a scheme, an array is not a floating-point tensor, dtypes or
            devices differ, or an old-order call whose shapes fit both orders.
        ValueError: the shapes do not agree, or a block size that does not fit d.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> X, Y = torch.ones(3, 4), torch.zeros(1, 4)
        >>> U, V = torch.ones(1, 2), torch.ones(3, 2) / 6
        >>> float(sdt.objective(sdt.SchemeSpec("dropout", 0.5), X, Y, U, V))
        6.0
    """
    reg = regularizer(scheme, U, V, X)
    return _squared_error(V.T @ X, Y, U) + reg


@reordered("feature_objective", 1, ("G", "Y", "U"), ("Y", "U", "G"), _FEATURE_SHAPES)
def feature_objective(
    scheme: object, G: torch.Tensor, Y: torch.Tensor, U: torch.Tensor
) -> torch.Tensor:
    """Deterministic objective of a unit-mask scheme on learnt features (Lemma 10 with G = g(X)).

    ``||Y - U G||^2 + <C-bar, U^T U * G G^T>`` for the last layer ``U`` (a x d) applied to the
    masked features ``G`` (d x N, samples as columns: a batch-first ``f`` gives ``G = f.T``), e.g.
    the deep network of Section 5.2. DropConnect needs the masked layer's weight and input: use
    :func:`dropconnect_regularizer`. The order before 1.0, ``feature_objective(scheme, Y, U, G)``,
    is accepted with a FutureWarning where the shapes prove it.

    Returns:
        A 0-dim tensor, differentiable in ``G``, ``Y`` and ``U``.

    Raises:
        TypeError: ``scheme`` is not a scheme, an array is not a floating-point tensor, dtypes or
            devices differ, or an old-order call whose shapes fit both orders.
        ValueError: a DropConnect scheme, the shapes do not agree, or a block size that does not
            fit d.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> G, Y, U = torch.ones(2, 3), torch.zeros(1, 3), torch.ones(1, 2)
        >>> float(sdt.feature_objective(sdt.SchemeSpec("dropblock", 0.5, 2), G, Y, U))
        24.0
    """
    spec = as_scheme_spec(scheme)
    if spec.kind == "dropconnect":
        raise ValueError(
            "DropConnect masks a weight matrix: use dropconnect_regularizer(U, V, X, theta)"
        )
    U = _tensor("U", U, 2)
    G = _tensor("G", G, 2, U)
    _check_pair(U, G)
    check_width(spec, U.shape[1])
    return _squared_error(G, Y, U) + _unit_regularizer(spec, U, G)

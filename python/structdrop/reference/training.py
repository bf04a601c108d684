"""Plain NumPy masked SGD (Algorithm 1): the test oracle and the benchmark baseline of
:func:`structdrop.train`.

Written separately from the C++ engine, with the same semantics (see :mod:`structdrop.training`):
per-sample step ``lr`` times the gradient of ``(1/2)||eps||^2``, minibatch = mean of the per-sample
steps from the same old ``U, V``, samples drawn uniformly with replacement, a fresh mask per
sample, recordings at ``0, record_every, ..., T`` with the mask of the next step. Its random stream
is NumPy's (``numpy.random.default_rng(seed)``), not the engine's Philox stream: runs agree with the
engine in distribution, not draw for draw.

Masks here are float 0/1 arrays: length d for unit schemes, b x d for DropConnect.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from .. import _core
from .._progress import progress_delay

if TYPE_CHECKING:  # a structural type only: this module's arithmetic shares nothing with the core's
    from .._objective_terms import _CoreScheme as Scheme

__all__ = [
    "characteristic_matrix",
    "deterministic_objective",
    "mask_means",
    "masked_step",
    "sample_mask",
    "stochastic_loss",
    "train",
]

NONE = _core.SchemeKind.none
DROPOUT = _core.SchemeKind.dropout
DROPBLOCK = _core.SchemeKind.dropblock
OVERLAPPING = _core.SchemeKind.overlapping_dropblock
DROPCONNECT = _core.SchemeKind.dropconnect


def _args(scheme: Scheme) -> tuple[_core.SchemeKind, float, int, float]:
    """The scheme's parameters (only read here: the arithmetic below is this module's own)."""
    params = scheme._core_params()
    return params.kind, params.theta, params.block_size, params.gamma


def _seed_windows(d: int, block_size: int) -> np.ndarray:
    """W[i, j] = 1 when the overlapping block of seed j (units j .. j + bs - 1) covers unit i."""
    seeds = d - block_size + 1
    i = np.arange(d)[:, None]
    j = np.arange(seeds)[None, :]
    return ((j <= i) & (i < j + block_size)).astype(float)


def mask_means(scheme: Scheme, d: int) -> np.ndarray:
    """E[z_i] of each hidden unit (DropConnect: of each entry of the mask on V)."""
    kind, theta, block_size, gamma = _args(scheme)
    if kind == NONE:
        return np.ones(d)
    if kind == OVERLAPPING:
        covered = _seed_windows(d, block_size).sum(axis=1)  # |W(i)|
        return (1.0 - gamma) ** covered
    return np.full(d, theta)


def characteristic_matrix(scheme: Scheme, d: int) -> np.ndarray:
    """C-bar = diag(mu)^-1 Cov(z) diag(mu)^-1 (d x d) of a unit scheme (Lemma 10)."""
    kind, theta, block_size, gamma = _args(scheme)
    if kind == NONE:
        return np.zeros((d, d))
    if kind == DROPOUT:
        return (1 - theta) / theta * np.eye(d)
    if kind == DROPBLOCK:
        blocks = np.arange(d) // block_size
        return (1 - theta) / theta * (blocks[:, None] == blocks[None, :]).astype(float)
    if kind == OVERLAPPING:
        W = _seed_windows(d, block_size)
        union = W.sum(1)[:, None] + W.sum(1)[None, :] - W @ W.T  # |W(i) u W(j)|
        mu = (1.0 - gamma) ** W.sum(1)
        return (1.0 - gamma) ** union / np.outer(mu, mu) - 1.0
    raise ValueError("DropConnect has no unit characteristic matrix")


def _band_cbar(scheme: Scheme, d: int, k: int) -> np.ndarray:
    """C-bar(i, i + k) for i = 0 .. d-k-1 (C-bar is symmetric and zero beyond the band)."""
    kind, theta, block_size, gamma = _args(scheme)
    i = np.arange(d - k)
    if kind == NONE:
        return np.zeros(d - k)
    beta = (1 - theta) / theta
    if kind == DROPOUT:
        return np.full(d - k, beta if k == 0 else 0.0)
    if kind == DROPBLOCK:
        return np.where(i // block_size == (i + k) // block_size, beta, 0.0)
    # Overlapping: C-bar(i, j) = (1 - gamma)^(-|W(i) n W(j)|) - 1, W(i) = seeds covering unit i.
    lo = lambda u: np.maximum(0, u - block_size + 1)  # noqa: E731
    hi = lambda u: np.minimum(u, d - block_size)  # noqa: E731
    common = np.maximum(0, np.minimum(hi(i), hi(i + k)) - np.maximum(lo(i), lo(i + k)) + 1)
    return (1.0 - gamma) ** (-common.astype(float)) - 1.0


def deterministic_objective(
    X: np.ndarray, Y: np.ndarray, U: np.ndarray, V: np.ndarray, scheme: Scheme
) -> float:
    """E over masks of ||Y - U D V^T X||_F^2 in closed form (docs/guide/objectives.md): the fit
    term plus Lemma 10's sum_ij C-bar_ij (u_i . u_j)(v_i^T X X^T v_j), summed over the band where
    C-bar can be non-zero (``|i - j| < block size``), or for DropConnect the corrected identity
    beta sum_i ||u_i||^2 sum_j V_ji^2 ||x_j||^2 (x_j the j-th row of X).
    O((a + b) b N + (a + b) b d + a b^2)."""
    kind, theta, block_size, _ = _args(scheme)
    gram = X @ X.T
    W = U @ V.T  # a x b
    fit = float(np.sum(Y * Y) - 2 * np.sum((Y @ X.T) * W) + np.sum((W @ gram) * W))
    if kind == NONE:
        return fit
    if kind == DROPCONNECT:
        beta = (1 - theta) / theta
        return fit + beta * float(np.sum(U**2, axis=0) @ (V**2).T @ np.diag(gram))
    d = U.shape[1]
    GV = gram @ V
    width = 1 if kind == DROPOUT else min(block_size, d)
    regularizer = 0.0
    for k in range(width):
        uu = np.sum(U[:, : d - k] * U[:, k:], axis=0)  # u_i . u_{i+k}
        vv = np.sum(V[:, : d - k] * GV[:, k:], axis=0)  # v_i^T X X^T v_{i+k}
        regularizer += (1 if k == 0 else 2) * float(np.sum(_band_cbar(scheme, d, k) * uu * vv))
    return fit + regularizer


def sample_mask(scheme: Scheme, d: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """One mask: 0/1 floats, length d (unit schemes) or b x d (DropConnect)."""
    kind, theta, block_size, gamma = _args(scheme)
    if kind == NONE:
        return np.ones(d)
    if kind == DROPOUT:
        return (rng.random(d) < theta).astype(float)
    if kind == DROPBLOCK:
        return np.repeat(rng.random(d // block_size) < theta, block_size).astype(float)
    if kind == OVERLAPPING:
        seeds = rng.random(d - block_size + 1) < gamma
        return (_seed_windows(d, block_size) @ seeds == 0).astype(float)
    return (rng.random((b, d)) < theta).astype(float)


def masked_step(
    U: np.ndarray,
    V: np.ndarray,
    Xb: np.ndarray,
    Yb: np.ndarray,
    masks: list[np.ndarray],
    scheme: Scheme,
    lr: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One Algorithm 1 step on the minibatch Xb (b x B), Yb (a x B) with one mask per sample.

    Returns new (U, V): U - lr * mean_s eps_s x_s^T V D_s and V - lr * mean_s x_s eps_s^T U D_s,
    both from the old U, V (DropConnect: D_s V^T -> (Z_s o V)^T / theta).
    """
    kind, theta, _, _ = _args(scheme)
    d = U.shape[1]
    B = Xb.shape[1]
    dU = np.zeros_like(U)
    dV = np.zeros_like(V)
    if kind == DROPCONNECT:
        for s in range(B):
            x, y, Z = Xb[:, s], Yb[:, s], masks[s] / theta
            W = Z * V
            h = W.T @ x
            eps = U @ h - y
            dU += np.outer(eps, h)
            dV += Z * np.outer(x, U.T @ eps)
    else:
        scale = 1.0 / mask_means(scheme, d)
        D = np.stack([m * scale for m in masks], axis=1)  # d x B
        H = D * (V.T @ Xb)
        E = U @ H - Yb
        dU = E @ H.T
        dV = Xb @ (D * (U.T @ E)).T
    return U - (lr / B) * dU, V - (lr / B) * dV


def stochastic_loss(
    X: np.ndarray, Y: np.ndarray, U: np.ndarray, V: np.ndarray, mask: np.ndarray, scheme: Scheme
) -> float:
    """||Y - U D V^T X||_F^2 over all the data for one mask, directly (O(a b N))."""
    kind, theta, _, _ = _args(scheme)
    if kind == DROPCONNECT:
        M = U @ ((mask / theta) * V).T
    else:
        M = (U * (mask / mask_means(scheme, U.shape[1]))) @ V.T
    return float(np.sum((Y - M @ X) ** 2))


def train(
    X: np.ndarray,
    Y: np.ndarray,
    U0: np.ndarray,
    V0: np.ndarray,
    scheme: Scheme,
    lr: float,
    iterations: int,
    batch_size: int = 1,
    record_every: int = 100,
    seed: int = 0,
    lr_decay: float | None = None,
    progress: bool | float = False,
):
    """Plain NumPy version of :func:`structdrop.train` (same semantics, NumPy's random stream).

    The per-step arithmetic is written for speed as plain NumPy would be (dense masked products),
    so that it is a fair baseline. ``progress`` is accepted for signature parity and ignored.

    Returns:
        :class:`structdrop.TrainResult`: the final U, V and the recorded objectives.

    Raises:
        ValueError: lr <= 0, or iterations, batch_size or record_every < 1; a width the scheme
            does not allow.
        TrainingDiverged: a non-finite objective or factor.

    Example:
        >>> import numpy as np
        >>> from structdrop import Dropout, reference
        >>> rng = np.random.default_rng(0)
        >>> X, Y = rng.standard_normal((3, 20)), rng.standard_normal((2, 20))
        >>> U0, V0 = 0.1 * rng.standard_normal((2, 4)), 0.1 * rng.standard_normal((3, 4))
        >>> res = reference.train(X, Y, U0, V0, Dropout(0.5), 0.01, 50)  # lr, iterations
        >>> res.U.shape, res.V.shape
        ((2, 4), (3, 4))
    """
    from ..training import TrainingDiverged, TrainResult

    progress_delay(progress)  # validated as structdrop.train validates it, then unused

    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    U = np.array(U0, dtype=float)
    V = np.array(V0, dtype=float)
    b, N = X.shape
    d = U.shape[1]
    kind, theta, _, _ = _args(scheme)
    scheme.check_width(d)
    if not lr > 0 or iterations < 1 or batch_size < 1 or record_every < 1:
        raise ValueError("need lr > 0, iterations >= 1, batch_size >= 1, record_every >= 1")
    rng = np.random.default_rng(seed)
    scale = 1.0 / mask_means(scheme, d)
    steps, stochastic, deterministic = [], [], []
    pending = sample_mask(scheme, d, b, rng)  # slot 0 of step 1

    def record(t: int) -> None:
        s = stochastic_loss(X, Y, U, V, pending, scheme)
        f = deterministic_objective(X, Y, U, V, scheme)
        if not (np.isfinite(s) and np.isfinite(f)):
            raise TrainingDiverged(f"training diverged at step {t}", step=t)
        steps.append(t)
        stochastic.append(s)
        deterministic.append(f)

    start = time.perf_counter()
    record(0)
    for t in range(1, iterations + 1):
        rate = lr if lr_decay is None else lr / (1.0 + (t - 1) / lr_decay)
        if batch_size == 1 and kind != DROPCONNECT:
            j = rng.integers(N)
            x, y = X[:, j], Y[:, j]
            D = pending * scale
            h = D * (V.T @ x)
            eps = U @ h - y
            g = D * (U.T @ eps)
            U -= rate * np.outer(eps, h)
            V -= rate * np.outer(x, g)
        else:
            idx = rng.integers(N, size=batch_size)
            masks = [pending] + [sample_mask(scheme, d, b, rng) for _ in range(batch_size - 1)]
            U, V = masked_step(U, V, X[:, idx], Y[:, idx], masks, scheme, rate)
        pending = sample_mask(scheme, d, b, rng)  # slot 0 of step t + 1
        if t % record_every == 0 or t == iterations:
            record(t)
    if not (np.isfinite(U).all() and np.isfinite(V).all()):
        raise TrainingDiverged(f"training diverged at step {iterations}", step=iterations)
    seconds = time.perf_counter() - start
    return TrainResult(
        U,
        V,
        np.array(steps, dtype=np.int64),
        np.array(stochastic),
        np.array(deterministic),
        seconds,
    )

"""The exact dropout objective of a user's network and its global-minimum bound, during training.

For a network ``features -> dropout -> head`` trained with the squared loss, write G (d x N) for
the features of the training samples (the input of the dropout layer, in eval mode), U (a x d) for
the head's weight and Y (a x N) for the targets. The expectation over the masks of the training
loss summed over the samples is the deterministic objective of the layer's scheme (Lemma 1,
Lemma 10, the corrected DropConnect identity) with G in place of V^T X, a function of U and of the
moments G G^T, Y G^T, ||Y||^2 only (:func:`structdrop.torch.feature_moments`). Since U G ranges over
products of a width-d network, the objective is bounded below by the corrected Theorem 7 minimum of
||Y - A||^2 + beta_bar ||sigma(A)||_(r)^2 over all A (which needs only the singular values of Y)
and, more tightly, over the A = U G the current features allow (A in G's row space).

How each layer enters the bound (d = ``head.in_features``, beta = (1 - theta)/theta):

- ``torch.nn.Dropout(p)``: theta = 1 - p, r = 1, beta_bar = beta / d.
- :class:`DropBlock1d`: r = its ``block_size``, beta_bar = (r / d) beta (:func:`beta_for_width`).
- :class:`DropConnectLinear` as the head (no dropout layer): per-weight masks give each output the
  same variance as Dropout(theta) on the head's input (the cross-output covariances differ, but
  the squared loss sums outputs), so its exact objective (the corrected identity with U = I,
  V = W^T) has the Dropout bound.
- :class:`OverlappingDropBlock1d`: the regulariser is sum_ij C_ij (u_i . u_j)(g_i . g_j) with
  C its characteristic matrix, a positive definite covariance. For each block size r' dividing d
  with E the d x (d / r') block indicator, C >= c E E^T with c = 1 / lambda_max(E^T C^-1 E), so the
  regulariser is at least c times the DropBlock(r') one, and beta_bar = (r' / d) c. The monitor
  uses the r' whose bound is largest (recorded in ``BoundRecord.block_size``).

A head with a bias c: the objective is exact at the current c (the masks do not touch the bias),
from the moments of [G; 1]. Minimising also over the bias centres the problem: for any A the best
bias leaves ||(Y - A) P||^2, P = I - 1 1^T / N, and ||sigma(A P)||_(r) <= ||sigma(A)||_(r), so both
bounds are those of the centred targets Y P (and the centred features G P for the feature bound):
centred targets and features give the same minimum as a free bias.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from .._migration import renamed_field, renamed_keywords
from .._progress import progress_delay
from .._results import ResultEquality
from .._validation import as_int
from ..global_min import GlobalMin, dropblock_global_min, global_min_from_moments
from ..moments import DataMoments
from ..objectives import objective_terms
from ..schemes import DropBlock, DropConnect, Dropout, MaskScheme, OverlappingDropBlock
from ..width import beta_for_width
from .layers import DropBlock1d, DropConnectLinear
from .moments import _default_device, _distributed_group, _owner_module, feature_moments

__all__ = ["BoundMonitor", "BoundRecord"]

SUPPORTED = (
    "torch.nn.Dropout, structdrop.torch.DropBlock1d, structdrop.torch.OverlappingDropBlock1d "
    "(as dropout), or dropout=None with a structdrop.torch.DropConnectLinear head"
)


@dataclass(frozen=True, eq=False)
class BoundRecord(ResultEquality):
    """One evaluation of :class:`BoundMonitor`.

    Attributes:
        step: the monitor's step count when evaluated (optimiser steps seen by ``step()``).
        objective: exact expectation over the masks of the squared loss summed over the samples,
            ``fit + regularizer``, at the current weights (and bias).
        fit: ||Y - U G - c 1^T||^2, the loss of the network in eval mode.
        regularizer: the scheme's exact regulariser (objective - fit).
        lower_bound: corrected Theorem 7 minimum over all A of
            ||Y - A||^2 + beta_bar ||sigma(A)||_(r)^2 for these targets (centred with a head bias).
        feature_lower_bound: the same minimum over the A in the current features' row space;
            ``objective >= feature_lower_bound >= lower_bound``.
        relative_gap: ``objective / lower_bound - 1`` (inf when the bound is 0 and the objective
            is not; 0 when both are), the meaning ``relative_gap`` has in every result type
            (``gap`` before 1.0, still readable with a FutureWarning).
        singular_values: singular values of the product U G (centred over the samples with a head
            bias), descending, one per output.
        theory_singular_values: singular values a* of the Theorem 7 minimiser, padded with zeros
            to one per output.
        theory_rank: rank of the Theorem 7 minimiser.
        block_size: r of the bound.  theta_bar: 1 / (1 + beta_bar) of the bound.
        n_samples: N.  seconds: wall-clock time of the evaluation.

    Example:
        >>> import numpy as np
        >>> from structdrop.torch import BoundRecord
        >>> rec = BoundRecord(0, 2.0, 1.5, 0.5, 1.0, 1.2, 1.0, np.ones(1), np.ones(1), 1, 1,
        ...                   0.5, 4, 0.1)
        >>> rec.relative_gap, rec.objective >= rec.feature_lower_bound >= rec.lower_bound
        (1.0, True)
    """

    step: int
    objective: float
    fit: float
    regularizer: float
    lower_bound: float
    feature_lower_bound: float
    relative_gap: float
    singular_values: np.ndarray
    theory_singular_values: np.ndarray
    theory_rank: int
    block_size: int
    theta_bar: float
    n_samples: int
    seconds: float

    gap = renamed_field("gap", "relative_gap", "BoundRecord")

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (arrays as they are).

        Returns:
            ``{field name: value}`` for every field, in declaration order.

        Raises:
            Nothing: it only reads the fields.

        Example:
            >>> import numpy as np
            >>> from structdrop.torch import BoundRecord
            >>> rec = BoundRecord(0, 2.0, 1.5, 0.5, 1.0, 1.2, 1.0, np.ones(1), np.ones(1), 1, 1,
            ...                   0.5, 4, 0.1)
            >>> rec.as_dict()["relative_gap"]
            1.0
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _resolve_scheme(head: nn.Linear, dropout: nn.Module | None) -> tuple[MaskScheme, str]:
    """The structdrop scheme of the layer's current rate, and 'unit' or 'weight' masks."""
    if isinstance(head, DropConnectLinear):
        if dropout is not None and not isinstance(dropout, nn.Identity):
            raise TypeError(
                "a DropConnectLinear head takes dropout=None: DropConnect and a dropout layer "
                f"together are not supported (got {type(dropout).__name__})"
            )
        return DropConnect(head.theta), "weight"
    if isinstance(dropout, nn.Dropout):
        if dropout.p >= 1.0:
            raise ValueError("nn.Dropout(p=1) drops everything: the objective is undefined")
        return Dropout(1.0 - dropout.p), "unit"
    if isinstance(dropout, DropBlock1d):  # OverlappingDropBlock1d included
        if dropout.overlapping:
            return OverlappingDropBlock(dropout.block_size, gamma=dropout.gamma), "unit"
        return DropBlock(dropout.block_size, theta=dropout.theta), "unit"
    raise TypeError(f"unsupported dropout layer {type(dropout).__name__}; supported: {SUPPORTED}")


@functools.lru_cache(maxsize=32)
def _overlapping_strengths(d: int, block_size: int, gamma: float) -> tuple[tuple[int, float], ...]:
    """(r', beta_bar) for every r' dividing d: C >= c E E^T, beta_bar = (r'/d) c (module doc)."""
    if gamma == 0.0:
        return ((1, 0.0),)
    cbar = OverlappingDropBlock(block_size, gamma=gamma).characteristic_matrix(d)
    # C is the covariance of the rescaled masks: positive semidefinite, singular when units share
    # their seeds (e.g. block_size = d). C >= c E E^T needs E's columns in C's range, and then
    # c = 1 / lambda_max(E^T C^+ E).
    lam, Q = np.linalg.eigh(cbar)
    keep = lam > 1e-12 * lam[-1]
    Qk, root = Q[:, keep], np.sqrt(lam[keep])
    out = []
    for r in range(1, d + 1):
        if d % r:
            continue
        E = np.kron(np.eye(d // r), np.ones((r, 1)))
        P = Qk.T @ E
        if np.linalg.norm(E - Qk @ P, 2) > 1e-9 * math.sqrt(r):
            continue  # a block direction C does not penalise: no bound of this form
        c = 1.0 / np.linalg.norm(P / root[:, None], 2) ** 2
        out.append((r, (r / d) * c))
    return tuple(out) if out else ((1, 0.0),)
    return tuple(out)


def _bound_settings(scheme: MaskScheme, d: int) -> list[tuple[int, float]]:
    """Candidate (r, beta_bar) of the lower bound for a layer of width d."""
    if isinstance(scheme, (Dropout, DropConnect)):
        return [(1, beta_for_width(scheme.theta, d, 1))]
    if isinstance(scheme, DropBlock):
        return [(scheme.block_size, beta_for_width(scheme.theta, d, scheme.block_size))]
    assert isinstance(scheme, OverlappingDropBlock)
    return list(_overlapping_strengths(d, scheme.block_size, float(scheme.gamma)))


class _WithOnes(nn.Module):
    """features(x) flattened, with a column of ones appended (for the sums over samples); holds the
    module that governs the features' mode, so that feature_moments' eval mode reaches it."""

    def __init__(self, features: Callable[[Any], torch.Tensor], owner: nn.Module | None) -> None:
        super().__init__()
        self.owner = owner
        self.call = features

    def forward(self, x: Any) -> torch.Tensor:
        g = self.call(x)
        if not isinstance(g, torch.Tensor) or g.dim() < 2:
            return g  # feature_moments names the problem
        g = g.reshape(g.shape[0], -1)
        return torch.cat([g, torch.ones_like(g[:, :1])], dim=1)


class _TargetGram:
    """Y Y^T (a x a, float64) of the batches a loader yields, added after feature_moments has
    accepted each batch (so that its checks speak first)."""

    def __init__(
        self, loader: Iterable[Any], num_classes: int | None, device: torch.device
    ) -> None:
        self.loader = loader
        self.num_classes = num_classes
        self.device = device
        self.gram: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]  # TypeError when unsized: fine

    def __iter__(self) -> Iterator[Any]:
        for item in self.loader:
            yield item
            self._add(item[1])

    def _add(self, targets: object) -> None:
        t = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(targets)
        # summed on the moments' device, read once at the end (no per-batch synchronisation)
        t = t.to(self.device, non_blocking=self.device.type == "cuda")
        if self.num_classes is not None:
            # Y Y^T of one-hot rows is diagonal: the class counts (out-of-range labels were
            # flagged by feature_moments and raise at the end of its pass)
            classes = torch.arange(self.num_classes, device=t.device)
            counts = (t.reshape(-1, 1) == classes).sum(0).to(torch.float64)
            part = torch.diag(counts)
        else:
            y = t.to(torch.float64).reshape(t.shape[0], -1)
            part = y.T @ y
        self.gram = part if self.gram is None else self.gram + part


def _singular_values(W: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """Singular values of W G from G G^T: square roots of the eigenvalues of W (G G^T) W^T."""
    eig = np.linalg.eigvalsh(W @ gram @ W.T)[::-1]
    return np.sqrt(np.clip(eig, 0.0, None))


class BoundMonitor:
    """The exact dropout objective of a network and its global-minimum bounds, during training.

    Watches a network ``features -> dropout -> head`` trained with the squared loss (summed over
    outputs; one-hot targets for classes). Each evaluation runs ``features`` over ``loader`` once
    in eval mode (:func:`feature_moments`: float64 moments on the device, nothing of size N held)
    and does O(d^3 + a^3) work on the moments; see the module docstring for the formulas, how each
    layer sets the bound, and how a head bias is handled. The monitor reads the layers' current
    rates at every evaluation (a drop-rate warm-up is followed).

    Only the squared loss is in the theory's reach: for cross-entropy or any other loss the
    recorded objective and bounds are those of the squared loss on the same network, and nothing
    can check at run time which loss trains it. Dropout elsewhere in ``features`` is off during the
    evaluation (eval mode), so the objective is the expectation over the last layer's masks only.

    Args:
        features: the module or callable producing the penultimate features (the dropout layer's
            input) from a batch's inputs, shape (batch, d) or (batch, ...) flattened to d; e.g.
            ``net.features`` (a bound method: the mode of ``net`` is switched).
        head: the last ``nn.Linear`` (a x d); a :class:`DropConnectLinear` for DropConnect.
        dropout: the layer between them: ``torch.nn.Dropout``, :class:`DropBlock1d` or
            :class:`OverlappingDropBlock1d`; None with a :class:`DropConnectLinear` head.
        loader: the training data (or a fixed subset) as ``(inputs, targets)`` batches, re-iterable
            (e.g. a ``DataLoader``), batch-first as in :func:`feature_moments`; it should yield
            the same samples at every pass (shuffling is fine, augmentation changes G).
        num_classes: targets are class indices (one-hot rows); else float (batch, a) targets.
        device: where the moments are accumulated, as in :func:`feature_moments` (default: the
            device of the features' module).
        record_every: ``step()`` evaluates on every ``record_every``-th call (default 1: every
            call; ``every=`` before 1.0, as ``batched_train``'s ``record_every``).
        writer: a ``torch.utils.tensorboard.SummaryWriter`` (anything with ``add_scalar`` and
            ``add_histogram``): each recorded evaluation is logged under ``structdrop/``.
        progress: a tqdm bar over the batches of each evaluation, as in :func:`feature_moments`.

    Raises:
        TypeError: ``head`` is not an ``nn.Linear``; an unsupported dropout layer (the message
            names the supported ones); a loader that is not an iterable; a writer without
            ``add_scalar``.
        ValueError: a block size that does not fit ``head.in_features``; bad ``record_every``.
            :meth:`evaluate` raises ValueError for features whose width is not
            ``head.in_features``, targets whose width is not ``head.out_features``, an empty
            loader, integer targets without ``num_classes`` (and the other errors of
            :func:`feature_moments`).

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> trunk = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.ReLU())
        >>> drop = sdt.DropBlock1d(5, p=0.5, overlapping=False)
        >>> head = torch.nn.Linear(10, 3)
        >>> data = [(torch.randn(8, 6), torch.randint(0, 3, (8,))) for _ in range(4)]
        >>> monitor = sdt.BoundMonitor(trunk, head, drop, data, num_classes=3)
        >>> rec = monitor.evaluate()
        >>> bool(rec.objective >= rec.feature_lower_bound >= rec.lower_bound)
        True
    """

    @renamed_keywords("BoundMonitor", every="record_every")
    def __init__(
        self,
        features: nn.Module | Callable[[Any], torch.Tensor],
        head: nn.Linear,
        dropout: nn.Module | None,
        loader: Iterable[Any],
        *,
        num_classes: int | None = None,
        device: torch.device | str | None = None,
        record_every: int | None = None,
        writer: Any = None,
        progress: bool | float = False,
    ) -> None:
        if not callable(features):
            raise TypeError(
                "features must be an nn.Module or a callable of a batch's inputs, got "
                f"{type(features).__name__}"
            )
        if not isinstance(head, nn.Linear):
            raise TypeError(
                f"head must be a torch.nn.Linear (the last layer), got {type(head).__name__}"
            )
        scheme, _ = _resolve_scheme(head, dropout)
        scheme.check_width(head.in_features if not isinstance(scheme, DropConnect) else 1)
        if isinstance(loader, (torch.Tensor, str, bytes)) or not isinstance(loader, Iterable):
            raise TypeError(
                "loader must be an iterable of (inputs, targets) batches, got "
                f"{type(loader).__name__}"
            )
        if isinstance(loader, Iterator):
            raise TypeError(
                "loader must be re-iterable (a DataLoader, a list of batches), not an iterator: "
                "every evaluation passes over it again"
            )
        if writer is not None and not callable(getattr(writer, "add_scalar", None)):
            raise TypeError(f"writer must have add_scalar (a SummaryWriter), got {writer!r}")
        progress_delay(progress)  # validated as everywhere: a bool or a delay in seconds
        self.features = features
        self.head = head
        self.dropout = dropout
        self.loader = loader
        self.num_classes = (
            None if num_classes is None else as_int("num_classes", num_classes, minimum=1)
        )
        self.device = None if device is None else torch.device(device)
        self.record_every = (
            1 if record_every is None else as_int("record_every", record_every, minimum=1)
        )
        self.writer = writer
        self.progress = progress
        self.history: list[BoundRecord] = []
        self.steps = 0
        self._wrapped = _WithOnes(features, _owner_module(features))

    every = renamed_field("every", "record_every", "BoundMonitor")

    def __deepcopy__(self, memo: dict[int, Any]) -> BoundMonitor:
        # the network and data are the user's (shared), the history is the monitor's own
        other = copy.copy(self)
        other.history = copy.deepcopy(self.history, memo)
        return other

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self) -> BoundRecord:
        """One pass over the loader: the exact objective, both bounds and the spectra, now.

        Does not add to :attr:`history` (:meth:`step` does).

        Returns:
            :class:`BoundRecord` at the current weights, with ``step`` the current step count.

        Raises:
            ValueError: see the class docstring.

        Example:
            >>> import torch, structdrop.torch as sdt
            >>> data = [(torch.randn(8, 6), torch.randn(8, 2))]  # float targets
            >>> layers = torch.nn.Linear(6, 4), torch.nn.Linear(4, 2), torch.nn.Dropout(0.5)
            >>> monitor = sdt.BoundMonitor(*layers, data)
            >>> monitor.evaluate().n_samples, len(monitor.history)
            (8, 0)
        """
        start = time.perf_counter()
        scheme, masks = _resolve_scheme(self.head, self.dropout)
        owner = _owner_module(self.features)
        device = self.device if self.device is not None else _default_device(owner)
        tap = _TargetGram(self.loader, self.num_classes, device)
        moments = feature_moments(
            self._wrapped, tap, device, num_classes=self.num_classes, progress=self.progress
        )
        d, a = self.head.in_features, self.head.out_features
        if moments.in_features - 1 != d:
            raise ValueError(
                f"head.in_features = {d} but the features have width {moments.in_features - 1}"
            )
        assert moments.cross is not None
        if moments.cross.shape[0] != a:
            raise ValueError(
                f"head.out_features = {a} but the targets have {moments.cross.shape[0]} outputs"
            )
        y_gram = tap.gram  # None on a process whose share was empty (the others had data)
        if y_gram is None:
            y_gram = torch.zeros((a, a), dtype=torch.float64, device=device)
        dist = _distributed_group()
        if dist is not None:  # feature_moments summed over the processes: so must Y Y^T
            nccl = dist.get_backend() == "nccl"
            comm = torch.device("cuda", torch.cuda.current_device()) if nccl else "cpu"
            y_gram = y_gram.to(comm)
            dist.all_reduce(y_gram)
        yy = y_gram.cpu().numpy()

        n = moments.n_samples
        # d x d and a x d copies (the kernel reads contiguous arrays): small next to the pass
        gram, sums = np.ascontiguousarray(moments.gram[:d, :d]), moments.gram[:d, d]
        cross, y_sums = np.ascontiguousarray(moments.cross[:, :d]), moments.cross[:, d]
        W = self.head.weight.detach().to(torch.float64).cpu().numpy()
        bias = self.head.bias
        if bias is None:
            at_weights = DataMoments(gram, cross, moments.y_sq_norm, n)
            centred = at_weights
        else:
            # residual Y - c 1^T: its cross moment and squared norm at the current bias c
            c = bias.detach().to(torch.float64).cpu().numpy()
            y_sq = moments.y_sq_norm - 2.0 * float(c @ y_sums) + n * float(c @ c)
            at_weights = DataMoments(gram, cross - np.outer(c, sums), max(y_sq, 0.0), n)
            # the free bias: targets and features centred over the samples (P = I - 1 1^T / N)
            centred = DataMoments(
                gram - np.outer(sums, sums) / n,
                cross - np.outer(y_sums, sums) / n,
                max(moments.y_sq_norm - float(y_sums @ y_sums) / n, 0.0),
                n,
            )
            yy = yy - np.outer(y_sums, y_sums) / n
        if masks == "weight":  # DropConnect: U = I_a, V = W^T (module docstring)
            terms = objective_terms(scheme, np.eye(a), W.T, at_weights)
        else:
            terms = objective_terms(scheme, W, np.eye(d), at_weights)

        # the minimum over all A needs only the singular values m of Y (Y P with a bias)
        m = np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (yy + yy.T)), 0.0, None))[::-1]
        best: tuple[GlobalMin, int, float] | None = None
        for r, beta_bar in _bound_settings(scheme, d):
            theta_bar = 1.0 / (1.0 + beta_bar)
            bound = dropblock_global_min(np.diag(m), block_size=r, theta_bar=theta_bar)
            if best is None or bound.objective > best[0].objective:
                best = (bound, r, theta_bar)
        assert best is not None
        bound, r, theta_bar = best
        feature_bound = global_min_from_moments(
            centred, block_size=r, theta_bar=theta_bar, warn=False
        )
        theory = np.zeros(a)
        k = min(a, bound.singular_values.size)
        theory[:k] = bound.singular_values[:k]
        lower = float(bound.objective)
        if lower > 0:
            relative_gap = terms.objective / lower - 1.0
        else:
            relative_gap = 0.0 if terms.objective == 0 else math.inf
        return BoundRecord(
            step=self.steps,
            objective=terms.objective,
            fit=terms.fit,
            regularizer=terms.regularizer,
            lower_bound=lower,
            feature_lower_bound=float(feature_bound.objective),
            relative_gap=relative_gap,
            singular_values=_singular_values(W, centred.gram),
            theory_singular_values=theory,
            theory_rank=int(bound.rank),
            block_size=r,
            theta_bar=theta_bar,
            n_samples=n,
            seconds=time.perf_counter() - start,
        )

    # -- watching training --------------------------------------------------------------------
    def step(self, step: int | None = None) -> BoundRecord | None:
        """Count one optimiser step; every ``record_every`` steps evaluate, record and log.

        Args:
            step: the step number to use instead of the monitor's own count (e.g. a trainer's
                global step); the count is set to it.

        Returns:
            The new :class:`BoundRecord` when this step was evaluated, else None.

        Raises:
            ValueError: a negative ``step``, or as :meth:`evaluate`.

        Example:
            >>> import torch, structdrop.torch as sdt
            >>> data = [(torch.randn(8, 6), torch.randint(0, 3, (8,)))]  # class labels
            >>> drop = sdt.DropBlock1d(2, p=0.5, overlapping=False)
            >>> monitor = sdt.BoundMonitor(
            ...     torch.nn.Linear(6, 4), torch.nn.Linear(4, 3), drop, data, num_classes=3,
            ...     record_every=2)
            >>> [monitor.step() is None for _ in range(4)]
            [True, False, True, False]
        """
        self.steps = self.steps + 1 if step is None else as_int("step", step, minimum=0)
        if self.steps % self.record_every:
            return None
        return self.record()

    def record(self) -> BoundRecord:
        """Evaluate now, append to :attr:`history` and log to the writer.

        Returns:
            The new :class:`BoundRecord`.

        Raises:
            ValueError: as :meth:`evaluate`; the writer's own errors.

        Example:
            >>> import torch, structdrop.torch as sdt
            >>> head = sdt.DropConnectLinear(4, 2, p=0.3)  # DropConnect: no dropout layer
            >>> data = [(torch.randn(8, 6), torch.randn(8, 2))]
            >>> monitor = sdt.BoundMonitor(torch.nn.Linear(6, 4), head, None, data)
            >>> monitor.record() is monitor.history[-1]
            True
        """
        rec = self.evaluate()
        self.history.append(rec)
        if self.writer is not None:
            for name, value in scalars(rec).items():
                self.writer.add_scalar(f"structdrop/{name}", value, rec.step)
            add_histogram = getattr(self.writer, "add_histogram", None)
            if callable(add_histogram):
                add_histogram("structdrop/singular_values", rec.singular_values, rec.step)
                add_histogram(
                    "structdrop/theory_singular_values", rec.theory_singular_values, rec.step
                )
        return rec

    def history_arrays(self) -> dict[str, np.ndarray]:
        """The history as a dict of arrays: one entry per record field, stacked over the records
        (``singular_values`` and ``theory_singular_values`` as (records, a) arrays).

        Returns:
            ``{field: array}``; empty arrays (no records) keep the field names.

        Raises:
            Nothing: the records were checked when made.

        Example:
            >>> import torch, structdrop.torch as sdt
            >>> drop = sdt.DropBlock1d(2, p=0.3, overlapping=True)
            >>> data = [(torch.randn(8, 6), torch.randn(8, 2))]
            >>> monitor = sdt.BoundMonitor(torch.nn.Linear(6, 4), torch.nn.Linear(4, 2), drop, data)
            >>> _ = monitor.record(), monitor.record()
            >>> monitor.history_arrays()["objective"].shape
            (2,)
        """
        names = [f.name for f in fields(BoundRecord)]
        if not self.history:
            return {name: np.zeros(0) for name in names}
        return {name: np.array([getattr(r, name) for r in self.history]) for name in names}


def scalars(record: BoundRecord) -> dict[str, float]:
    """The scalar metrics logged for a record (objective, bounds, relative gap, fit,
    regulariser)."""
    return {
        "objective": record.objective,
        "lower_bound": record.lower_bound,
        "feature_lower_bound": record.feature_lower_bound,
        "relative_gap": record.relative_gap,
        "fit": record.fit,
        "regularizer": record.regularizer,
    }

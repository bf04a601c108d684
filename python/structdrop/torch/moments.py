"""Data moments of learnt features, accumulated batch by batch on the device (and across processes).

For features G = [g(x_1) ... g(x_N)] (d x N) of a network and targets Y (a x N), every deterministic
objective of a dropout scheme on the last layer (Lemma 1 / Lemma 10 with G in place of V^T X), and
the global minimum over the features' row space, depend on the data only through

    G G^T (d x d),   Y G^T (a x d),   ||Y||_F^2   and N,

the fields of :class:`structdrop.DataMoments` (``gram``, ``cross``, ``y_sq_norm``, ``n_samples``)
with G in the role of X. :func:`feature_moments` computes them in one pass over a data loader, never
holding more than one batch of features, so that the bound and the objectives scale to data sets of
any size, and sums them over the processes of a ``torch.distributed`` job (moments add exactly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from typing import Any

import torch
from torch import nn

from .._progress import progress_bar, progress_delay
from .._validation import as_int
from ..moments import DataMoments

__all__ = ["feature_moments"]

# The host asks the device whether a NaN has been seen only every this many batches (and at the
# end): asking after every batch would make a CUDA pass wait for each batch in turn.
CHECK_EVERY = 16


def _owner_module(features: object) -> nn.Module | None:
    """The module whose mode governs ``features``: the module itself or, for a bound method such as
    ``net.features``, the module it belongs to."""
    if isinstance(features, nn.Module):
        return features
    owner = getattr(features, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def _default_device(module: nn.Module | None) -> torch.device:
    if module is not None:
        for tensor in module.parameters():
            return tensor.device
        for buffer in module.buffers():
            return buffer.device
    return torch.device("cpu")


def _to_device(value: Any, device: torch.device) -> Any:
    """Tensors (also inside tuples, lists and dicts) moved to ``device``; anything else as is."""
    if isinstance(value, torch.Tensor):
        # asynchronous only towards a GPU: a copy to the host must be complete before it is read
        return value.to(device, non_blocking=device.type == "cuda")
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


class _Accumulator:
    """Running sums G G^T, Y G^T, ||Y||^2, N in float64 on one device, batch by batch."""

    def __init__(self, device: torch.device, num_classes: int | None) -> None:
        self.device = device
        self.num_classes = num_classes
        self.gram: torch.Tensor | None = None
        self.cross: torch.Tensor | None = None
        self.y_sq = torch.zeros((), dtype=torch.float64, device=device)
        self.n = 0
        self.batches = 0
        # index of the first batch with non-finite features / bad targets, -1 while none (on device)
        self.bad_features = torch.full((), -1, dtype=torch.int64, device=device)
        self.bad_targets = torch.full((), -1, dtype=torch.int64, device=device)

    def _targets(self, index: int, targets: object, batch: int) -> torch.Tensor:
        """The batch's targets as a (batch, a) float64 tensor on the device."""
        try:
            t = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(targets)
        except Exception as exc:
            raise TypeError(
                f"the targets of batch {index} must be a tensor or array: {exc}"
            ) from None
        t = _to_device(t, self.device)
        if self.num_classes is not None:
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool or t.dim() != 1:
                raise ValueError(
                    "with num_classes, the targets must be integer class indices of shape "
                    f"(batch,); batch {index} has {t.dtype} targets of shape {tuple(t.shape)}"
                )
            # one-hot by comparison: an out-of-range label gives a zero row and is flagged, never a
            # device-side assertion
            classes = torch.arange(self.num_classes, device=self.device)
            out_of_range = ((t < 0) | (t >= self.num_classes)).any()
            self.bad_targets = torch.where(
                (self.bad_targets < 0) & out_of_range, index, self.bad_targets
            )
            t = (t.unsqueeze(1) == classes).to(torch.float64)
        else:
            if not (t.is_floating_point() or t.dtype == torch.bool):
                raise ValueError(
                    f"the targets of batch {index} are {t.dtype}: pass num_classes=... for class "
                    "indices, or give float targets of shape (batch, a) or (batch,)"
                )
            if t.dim() == 1:
                t = t.unsqueeze(1)
            if t.dim() != 2:
                raise ValueError(
                    f"the targets of batch {index} must have shape (batch, a) or (batch,), got "
                    f"{tuple(t.shape)}"
                )
            t = t.to(torch.float64)
            finite = torch.isfinite(t).all()
            self.bad_targets = torch.where(
                (self.bad_targets < 0) & ~finite, index, self.bad_targets
            )
        if t.shape[0] != batch:
            raise ValueError(
                f"batch {index}: the features are for {batch} samples but the targets have shape "
                f"{tuple(t.shape)}"
            )
        return t

    def add(self, index: int, feats: object, targets: object) -> None:
        if not isinstance(feats, torch.Tensor):
            raise TypeError(
                f"features must return a tensor; for batch {index} it returned "
                f"{type(feats).__name__}"
            )
        if feats.dim() < 2 or feats.shape[0] == 0:
            raise ValueError(
                "features must return (batch, d) or (batch, ...) with batch >= 1; for batch "
                f"{index} it returned shape {tuple(feats.shape)}"
            )
        if feats.is_complex():
            raise TypeError(f"features must return real values; batch {index} gave {feats.dtype}")
        batch = feats.shape[0]
        # (batch, d); a batch-sized copy at most
        G = feats.reshape(batch, -1).to(self.device, torch.float64)
        Y = self._targets(index, targets, batch)
        sums = self.sums()
        if sums is None:
            gram = torch.zeros((G.shape[1], G.shape[1]), dtype=torch.float64, device=self.device)
            cross = torch.zeros((Y.shape[1], G.shape[1]), dtype=torch.float64, device=self.device)
            self.gram, self.cross = gram, cross
        else:
            gram, cross = sums
            if G.shape[1] != gram.shape[0]:
                raise ValueError(
                    "features must return the same number of features d for every batch: d = "
                    f"{gram.shape[0]} before, batch {index} gave shape {tuple(feats.shape)} "
                    f"(d = {G.shape[1]})"
                )
            if Y.shape[1] != cross.shape[0]:
                raise ValueError(
                    "the targets must have the same number of outputs a in every batch: a = "
                    f"{cross.shape[0]} before, batch {index} has targets of shape "
                    f"{tuple(Y.shape)}"
                )
        finite = torch.isfinite(G).all()
        self.bad_features = torch.where((self.bad_features < 0) & ~finite, index, self.bad_features)
        gram.addmm_(G.T, G)  # G G^T in the samples-as-columns convention of DataMoments
        cross.addmm_(Y.T, G)
        self.y_sq += Y.square().sum()
        self.n += batch
        self.batches += 1
        if self.batches % CHECK_EVERY == 0:
            self.check()

    def sums(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(G G^T, Y G^T) so far, or None before the first batch."""
        if self.gram is None or self.cross is None:
            return None
        return self.gram, self.cross

    def check(self) -> None:
        """Raise for the first bad batch seen so far (one device-to-host read)."""
        bad_features, bad_targets = (
            int(v) for v in torch.stack([self.bad_features, self.bad_targets]).tolist()
        )
        if bad_features >= 0:
            raise ValueError(f"features returned NaN or infinite values for batch {bad_features}")
        if bad_targets >= 0:
            what = "NaN or infinite values"
            if self.num_classes is not None:
                what = f"labels outside 0..{self.num_classes - 1}"
            raise ValueError(f"the targets of batch {bad_targets} contain {what}")


def _distributed_group() -> Any:
    """torch.distributed when a default process group is initialised, else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist
    return None


def _reduce(
    dist: Any, acc: _Accumulator, failure: BaseException | None
) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """Sum the moments over the processes (two collectives, made by every process even after a
    local failure, so that an error on one process raises on all of them instead of hanging)."""
    # NCCL reduces tensors on this process's CUDA device; gloo (and the others) CPU tensors.
    nccl = dist.get_backend() == "nccl"
    comm = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    d = a = n = 0
    sums = acc.sums()
    if sums is not None:
        d, a, n = sums[0].shape[0], sums[1].shape[0], acc.n
    info = torch.tensor([int(failure is not None), d, a, n], dtype=torch.int64, device=comm)
    gathered = [torch.zeros_like(info) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, info)
    table = torch.stack(gathered).cpu().tolist()
    failed = [rank for rank, row in enumerate(table) if row[0]]
    if failure is not None:
        raise failure
    if failed:
        raise RuntimeError(
            f"feature_moments failed on process(es) {failed} of the torch.distributed group"
        )
    shapes = {(row[1], row[2]) for row in table if row[3] > 0}
    if len(shapes) > 1:
        per_rank = {rank: (row[1], row[2]) for rank, row in enumerate(table) if row[3] > 0}
        raise ValueError(f"the processes' features/targets differ in shape (d, a): {per_rank}")
    if not shapes:
        raise ValueError("the loader yielded no samples on any process")
    d, a = shapes.pop()
    flat = torch.zeros(d * d + a * d + 2, dtype=torch.float64, device=comm)
    if sums is not None and n > 0:
        flat[: d * d] = sums[0].reshape(-1).to(comm)
        flat[d * d : d * d + a * d] = sums[1].reshape(-1).to(comm)
        flat[-2] = acc.y_sq.to(comm)
        flat[-1] = float(n)  # exact: sample counts are far below 2^53
    dist.all_reduce(flat)  # SUM: moments of the union of the processes' samples
    gram = flat[: d * d].reshape(d, d)
    cross = flat[d * d : d * d + a * d].reshape(a, d)
    return gram, cross, float(flat[-2]), int(flat[-1])


def feature_moments(
    features: nn.Module | Callable[[Any], torch.Tensor],
    loader: Iterable[Any],
    device: torch.device | str | None = None,
    *,
    num_classes: int | None = None,
    eval_mode: bool = True,
    all_reduce: bool = True,
    progress: bool | float = False,
) -> DataMoments:
    """Moments G G^T, Y G^T, ||Y||^2 and N of a feature extractor's output over a data loader.

    Runs ``features`` on every batch of ``loader`` under ``torch.no_grad()`` and accumulates, on
    ``device`` in float64 (whatever the model's dtype), the sums over batches of ``G_b G_b^T``,
    ``Y_b G_b^T`` and ``||Y_b||^2``, where ``G_b`` holds the batch's features as columns. The result
    is the :class:`structdrop.DataMoments` of features G (d x N) and targets Y (a x N), exactly as
    :func:`structdrop.data_moments` would compute them from the materialised ``G`` and ``Y`` (up to
    rounding); only one batch of features is held at a time. Pass it to
    :func:`structdrop.objective_terms` (with ``V = I_d``) for the exact deterministic objective of
    a last layer ``U`` on these features (Lemma 1 / Lemma 10).

    Args:
        features: an ``nn.Module`` or any callable of a batch's inputs returning a tensor of shape
            (batch, d), or (batch, ...) which is flattened to (batch, d) (e.g. convolutional maps).
        loader: an iterable of ``(inputs, targets)`` pairs, such as
            a ``torch.utils.data.DataLoader``. ``inputs`` is what ``features`` takes (tensors, also
            inside tuples/lists/dicts, are moved to ``device``). ``targets``: float of shape (batch,
            a), or (batch,) for a = 1; or, with ``num_classes``, integer class indices of shape
            (batch,) used as one-hot rows (the squared-loss targets of the paper's Section 5.2
            experiment). Batches may differ in size (a last, partial batch is fine).
        device: where inputs are sent and the moments accumulated. Default: the device of the
            module's first parameter (or buffer) -- for a bound method such as ``net.features``, of
            ``net`` -- else the CPU. The module itself is never moved.
        num_classes: the number of classes when the targets are class indices (see ``loader``).
        eval_mode: put the module (``features``, or the module a bound method belongs to) in
            eval mode for the pass -- BatchNorm with running statistics, dropout off -- and
            afterwards restore every submodule's own ``training`` flag as it was. False leaves the
            modes alone, as it does for a plain function, whose modes are the caller's business.
        all_reduce: when a ``torch.distributed`` process group is initialised, return the moments
            summed over all its processes (each process passing the loader of its own share of
            the data, e.g. with a ``DistributedSampler``; every process must call this). False
            returns this process's moments only.
        progress: a tqdm bar over the batches on stderr (on process 0 only when distributed); a
            number of seconds shows it only once the pass has taken that long.

    Returns:
        :class:`structdrop.DataMoments` with NumPy float64 ``gram`` (d x d, symmetric), ``cross``
        (a x d), ``y_sq_norm`` and ``n_samples``.

    Raises:
        TypeError: a batch that is not an ``(inputs, targets)`` pair, features returning no tensor.
        ValueError: features or targets of the wrong shape, or a d or a that changes between
            batches (naming the batch and the shapes); NaN or infinite features or targets, or a
            class index out of range (naming the first such batch; checked on the device and read
            every 16 batches and at the end); an empty loader; processes disagreeing on (d, a).
            With a process group, an error on one process raises it there and a RuntimeError naming
            that process on the others (none is left waiting).

    Accuracy: the sums are float64 whatever the model's dtype, so float32 features give their
    moments to float64 rounding; the distributed sum adds the processes' moments in another order
    than one process would (agreement to about 1e-15 relative).

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> features = torch.nn.Linear(4, 3)
        >>> data = [(torch.randn(5, 4), torch.randint(0, 2, (5,))) for _ in range(2)]
        >>> m = sdt.feature_moments(features, data, num_classes=2)
        >>> m.gram.shape, m.cross.shape, m.n_samples
        ((3, 3), (2, 3), 10)
    """
    if not callable(features):
        raise TypeError(
            "features must be an nn.Module or a callable of a batch's inputs, got "
            f"{type(features).__name__}"
        )
    if num_classes is not None:
        num_classes = as_int("num_classes", num_classes, minimum=1)
    delay = progress_delay(progress)
    for name, flag in (("eval_mode", eval_mode), ("all_reduce", all_reduce)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if isinstance(loader, (torch.Tensor, str, bytes)) or not isinstance(loader, Iterable):
        raise TypeError(
            f"loader must be an iterable of (inputs, targets) batches, got {type(loader).__name__}"
        )
    module = _owner_module(features)
    device = _default_device(module) if device is None else torch.device(device)
    dist = _distributed_group() if all_reduce else None

    modes = (
        [(m, m.training) for m in module.modules()] if (module is not None and eval_mode) else []
    )
    acc = _Accumulator(device, num_classes)
    failure: BaseException | None = None
    bar = None
    try:
        if delay is not None and (dist is None or dist.get_rank() == 0):
            try:
                total = len(loader) if isinstance(loader, Sized) else None
            except TypeError:  # a generator, or a DataLoader over an IterableDataset
                total = None
            bar = progress_bar(total, "structdrop.feature_moments", delay, unit="batch")
        if module is not None and modes:
            module.eval()
        with torch.no_grad():
            for index, item in enumerate(loader):
                if not isinstance(item, (tuple, list)) or len(item) != 2:
                    raise TypeError(
                        f"loader must yield (inputs, targets) pairs; batch {index} is a "
                        f"{type(item).__name__}"
                        + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
                    )
                inputs, targets = item
                acc.add(index, features(_to_device(inputs, device)), targets)
                if bar is not None:
                    bar.update(1)
        acc.check()
        sums = acc.sums()
        if sums is not None and not (
            torch.isfinite(sums[0]).all()
            and torch.isfinite(sums[1]).all()
            and torch.isfinite(acc.y_sq)
        ):
            raise ValueError(
                "the features or targets are too large: their moments overflow float64"
            )
    except Exception as exc:
        if dist is None:
            raise
        # raised after telling the other processes, which would otherwise wait forever
        failure = exc
    finally:
        # each submodule's own flag, as it was (not module.train(), which sets all)
        for m, mode in modes:
            m.training = mode
        if bar is not None:
            bar.close()

    if dist is not None:
        gram, cross, y_sq, n = _reduce(dist, acc, failure)
    else:
        sums = acc.sums()
        if sums is None:
            raise ValueError("the loader yielded no batches")
        (gram, cross), y_sq, n = sums, float(acc.y_sq), acc.n
    gram = 0.5 * (gram + gram.T)  # exactly symmetric (the products' rounding may differ by entry)
    return DataMoments(
        gram=gram.cpu().numpy(),
        cross=cross.cpu().numpy(),
        y_sq_norm=y_sq,
        n_samples=n,
    )

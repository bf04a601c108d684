"""PyTorch Lightning: :class:`BoundCallback` runs a :class:`structdrop.torch.BoundMonitor` in a
``lightning.Trainer`` (optional extra: ``pip install "structdrop[lightning]"``).

``import structdrop.torch`` never imports Lightning; this module does (and without Lightning it
still imports, so that the documentation builds, but :class:`BoundCallback` cannot be created).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._migration import renamed_field, renamed_keywords
from .monitor import BoundMonitor, BoundRecord, scalars

_LIGHTNING_ERROR: ImportError | None = None
if TYPE_CHECKING:
    from lightning.pytorch import Callback
else:
    try:
        from lightning.pytorch import Callback
    except ImportError as exc:  # pragma: no cover - exercised only without lightning
        Callback = object  # the module still imports (API docs); BoundCallback() raises
        _LIGHTNING_ERROR = exc

__all__ = ["BoundCallback"]


def _resolve(pl_module: nn.Module, value: Any, what: str) -> Any:
    """``value``, or the attribute of the LightningModule at the dotted path ``value``."""
    if not isinstance(value, str):
        return value
    try:
        return functools.reduce(getattr, value.split("."), pl_module)
    except AttributeError:
        raise AttributeError(
            f"{what}={value!r}: the LightningModule {type(pl_module).__name__} has no such "
            "attribute"
        ) from None


class BoundCallback(Callback):
    """Evaluate the exact dropout objective and its bounds every ``record_every`` optimiser steps.

    From ``on_train_batch_end`` (once per optimiser step: with gradient accumulation, once per
    accumulated step) a :class:`structdrop.torch.BoundMonitor` evaluates the network and the
    scalars (``objective``, ``lower_bound``, ``feature_lower_bound``, ``relative_gap``, ``fit``,
    ``regularizer``, prefixed by ``prefix``) go to every logger of the trainer at the trainer's
    global step; a TensorBoard logger also receives the singular values as histograms. Under DDP
    every process evaluates on its own share of the data and the moments are summed over the
    processes (as :func:`structdrop.torch.feature_moments` does), so all receive the same record;
    only process 0 logs.

    Args:
        features, head, dropout: as for :class:`BoundMonitor`, or dotted attribute names on the
            LightningModule (e.g. ``"net.features"``, ``"net.last"``, ``"net.drop"``), resolved
            when training starts.
        loader: the data to evaluate on; None: the trainer's training dataloader.
        num_classes, device, progress: as for :class:`BoundMonitor`.
        record_every: evaluate when the global step is a multiple of ``record_every`` (default 1;
            ``every=`` before 1.0).
        prefix: prefix of the logged names.

    Attributes:
        monitor: the :class:`BoundMonitor` (None before training starts); ``monitor.history``
            holds the records.

    Raises:
        ImportError: Lightning is not installed.

    Example:
        >>> from structdrop.torch.lightning import BoundCallback  # doctest: +SKIP
        >>> cb = BoundCallback("features", "head", "drop", num_classes=10)  # doctest: +SKIP
        >>> lightning.Trainer(callbacks=[cb]).fit(model)  # doctest: +SKIP
    """

    @renamed_keywords("BoundCallback", every="record_every")
    def __init__(
        self,
        features: nn.Module | Callable[[Any], torch.Tensor] | str,
        head: nn.Linear | str,
        dropout: nn.Module | str | None,
        loader: Iterable[Any] | None = None,
        *,
        num_classes: int | None = None,
        device: torch.device | str | None = None,
        record_every: int | None = None,
        progress: bool | float = False,
        prefix: str = "structdrop/",
    ) -> None:
        if _LIGHTNING_ERROR is not None:
            raise ImportError(
                "BoundCallback needs PyTorch Lightning: pip install 'structdrop[lightning]'"
            ) from _LIGHTNING_ERROR
        super().__init__()
        self.features, self.head, self.dropout = features, head, dropout
        self.loader = loader
        self.num_classes, self.device, self.record_every = num_classes, device, record_every
        self.progress = progress
        self.prefix = str(prefix)
        self.monitor: BoundMonitor | None = None
        self._last_step = -1

    every = renamed_field("every", "record_every", "BoundCallback")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # the monitor is built at the first step (the train dataloader exists by then); a step
        # is evaluated once the optimiser has moved past the step training starts (or resumes) at
        self.monitor = None
        self._last_step = int(trainer.global_step)

    def _build(self, trainer: Any, pl_module: Any) -> BoundMonitor:
        loader = self.loader if self.loader is not None else trainer.train_dataloader
        if loader is None:
            raise ValueError("BoundCallback: no loader given and the trainer has none")
        return BoundMonitor(
            _resolve(pl_module, self.features, "features"),
            _resolve(pl_module, self.head, "head"),
            _resolve(pl_module, self.dropout, "dropout"),
            loader,
            num_classes=self.num_classes,
            device=self.device,
            record_every=self.record_every,
            progress=self.progress,
        )

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = int(trainer.global_step)
        if step == self._last_step:  # gradient accumulation: no optimiser step yet
            return
        self._last_step = step
        if self.monitor is None:
            self.monitor = self._build(trainer, pl_module)
        record = self.monitor.step(step)
        if record is not None:
            self._log(trainer, record)

    def _log(self, trainer: Any, record: BoundRecord) -> None:
        if not trainer.is_global_zero:
            return
        metrics = {self.prefix + k: v for k, v in scalars(record).items()}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=record.step)
            add_histogram = getattr(getattr(logger, "experiment", None), "add_histogram", None)
            if callable(add_histogram):
                for name in ("singular_values", "theory_singular_values"):
                    add_histogram(self.prefix + name, getattr(record, name), record.step)

"""Drop-rate warm-up schedules held in a layer's state (``state_dict``), stepped by the
training loop.

A scheduled layer keeps its step counter in a registered buffer ``schedule_step`` (int64, 0-dim),
so checkpoints store it, ``load_state_dict`` restores it and DistributedDataParallel broadcasts it
with the other buffers. Its current drop rate is ``target_p * f(step / warmup_steps)``, ``f(t) = t``
(linear) or ``(1 - cos(pi t)) / 2`` (cosine), clamped at ``f = 1`` once ``step >= warmup_steps``;
``warmup_steps=0`` means no warm-up. Steps are counted by the caller (``layer.step()`` or
:class:`DropRateScheduler`), never by ``forward``, so evaluation passes do not advance them.

The step is mirrored in a Python int so ``forward`` never reads the buffer (reading a CUDA tensor
would synchronise the device on every call); the mirror is refreshed after ``load_state_dict``.
All ranks of a DDP job must step their layers equally (they do when the loop is the same).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from .._validation import as_int, as_probability

__all__ = ["DropRateScheduler", "ScheduledDropRate", "warmup_factor"]

_KINDS = ("linear", "cosine")


def warmup_factor(step: int, warmup_steps: int, kind: str = "linear") -> float:
    """The warm-up multiplier in [0, 1] of the drop rate after ``step`` steps.

    Returns:
        ``t`` (linear) or ``(1 - cos(pi t)) / 2`` (cosine) at ``t = step / warmup_steps``; 1.0 once
        ``step >= warmup_steps`` or without a warm-up (``warmup_steps <= 0``).

    Raises:
        ValueError: an unknown ``kind``.

    Example:
        >>> from structdrop.torch import warmup_factor
        >>> warmup_factor(5, 10), round(warmup_factor(5, 10, "cosine"), 12), warmup_factor(20, 10)
        (0.5, 0.5, 1.0)
    """
    if kind not in _KINDS:
        raise ValueError(f"warmup must be one of {_KINDS}, got {kind!r}")
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    t = max(step, 0) / warmup_steps
    return t if kind == "linear" else 0.5 * (1.0 - math.cos(math.pi * t))


class ScheduledDropRate(nn.Module):
    """Base class of modules whose drop rate ``p`` warms up from 0 to ``target_p``.

    Subclasses call :meth:`_init_schedule` in ``__init__`` and read :attr:`p` in ``forward``.

    Raises:
        ValueError: (from ``_init_schedule``) an unknown warm-up kind or negative ``warmup_steps``.

    Example:
        >>> import structdrop.torch as sdt
        >>> layer = sdt.DropBlock2d(3, p=0.2, warmup_steps=4)
        >>> isinstance(layer, sdt.ScheduledDropRate), layer.p, layer.step(2)
        (True, 0.0, 0.1)
    """

    schedule_step: torch.Tensor

    def _init_schedule(self, target_p: float, warmup_steps: object, warmup: str) -> None:
        if warmup not in _KINDS:
            raise ValueError(f"warmup must be one of {_KINDS}, got {warmup!r}")
        self.target_p = float(target_p)
        self.warmup_steps = as_int("warmup_steps", warmup_steps, minimum=0)
        self.warmup = warmup
        self._step = 0
        self.register_buffer("schedule_step", torch.zeros((), dtype=torch.int64))
        self.register_load_state_dict_post_hook(_refresh_step)

    @property
    def p(self) -> float:
        """The current drop probability (``target_p`` times the warm-up factor)."""
        return self.target_p * warmup_factor(self._step, self.warmup_steps, self.warmup)

    @p.setter
    def p(self, value: float) -> None:
        """Set the target drop rate (the warm-up, if any, still scales it)."""
        self.target_p = as_probability("p", value, low_open=False, high_open=True)

    @property
    def theta(self) -> float:
        """The current retain probability ``1 - p``."""
        return 1.0 - self.p

    def step(self, steps: int = 1) -> float:
        """Advance the schedule by ``steps`` training steps.

        Returns:
            The new drop rate :attr:`p`.

        Raises:
            ValueError: ``steps`` is negative or not an integer.

        Example:
            >>> import structdrop.torch as sdt
            >>> sdt.WeightDropout(p=0.4, warmup_steps=2).step()
            0.2
        """
        self._step += as_int("steps", steps, minimum=0)
        self.schedule_step.fill_(self._step)  # no host sync: a scalar fill is queued on the device
        return self.p

    def _schedule_repr(self) -> str:
        if not self.warmup_steps:
            return ""
        return f", warmup={self.warmup!r}, warmup_steps={self.warmup_steps}, step={self._step}"


def _refresh_step(module: ScheduledDropRate, incompatible_keys: object) -> None:
    module._step = int(module.schedule_step)


class DropRateScheduler:
    """Steps every :class:`ScheduledDropRate` module of a model (structdrop layers, weight dropout).

    Call :meth:`step` once per optimiser step. The state lives in the layers' buffers, so saving
    and loading the model's ``state_dict`` is all a checkpoint needs.

    Args:
        model: any module; its scheduled sub-modules are found with ``model.modules()``.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> net = torch.nn.Sequential(sdt.DropBlock2d(3, p=0.2, warmup_steps=4))
        >>> sdt.DropRateScheduler(net).step(2)
        {'0': 0.1}
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    def layers(self) -> Iterator[ScheduledDropRate]:
        """The scheduled modules of the model (parametrizations included).

        Returns:
            An iterator over the :class:`ScheduledDropRate` sub-modules, in ``modules()`` order.

        Raises:
            Nothing: the model was checked when the scheduler was made.

        Example:
            >>> import torch, structdrop.torch as sdt
            >>> net = torch.nn.Sequential(sdt.DropBlock2d(3, p=0.2), torch.nn.ReLU())
            >>> len(list(sdt.DropRateScheduler(net).layers()))
            1
        """
        return (m for m in self.model.modules() if isinstance(m, ScheduledDropRate))

    def step(self, steps: int = 1) -> dict[str, float]:
        """Advance every scheduled module by ``steps``.

        Returns:
            The new drop rates, by module name (``named_modules()``).

        Raises:
            ValueError: ``steps`` is negative or not an integer.

        Example:
            >>> import torch, structdrop.torch as sdt
            >>> net = torch.nn.Sequential(sdt.DropBlock2d(3, p=0.2, warmup_steps=4))
            >>> sdt.DropRateScheduler(net).step(4)
            {'0': 0.2}
        """
        rates = {}
        for name, module in self.model.named_modules():
            if isinstance(module, ScheduledDropRate):
                rates[name] = module.step(steps)
        return rates

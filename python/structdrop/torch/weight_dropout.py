"""DropConnect on any module's weights (recurrent ones included)
through ``torch.nn.utils.parametrize``.

``weight_dropout(module, names=("weight_hh_l0",), p=0.5)`` replaces each named parameter ``w`` by
the parametrization ``w * m / (1 - p)`` with ``m`` a Bernoulli(1 - p) mask of w's shape, so the
module's own ``forward`` (cuDNN/oneDNN kernels included) sees the masked weight and autograd
reaches the original parameter (``module.parametrizations.<name>.original``). In eval mode, and
at p = 0, the parametrization is the identity.

One mask per forward call, shared by everything inside it: a mask is drawn lazily at the first
read of the weight after the module's forward pre-hook marks it stale and reused for any further
read in that call. For ``nn.LSTM``/``nn.GRU``/``nn.RNN`` the whole sequence (all time steps, all
samples of the batch) therefore uses one mask, as in AWD-LSTM's weight drop. With
``redraw="manual"`` the mask is kept across calls until :func:`redraw_weight_masks` is called:
the way to share one mask over a sequence that is fed step by step (``nn.LSTMCell`` in a loop).
A kept mask stays scaled by ``1 / (1 - p)`` at the rate ``p`` it was drawn at, so the masked
weight stays unbiased when a schedule step or a new ``p`` changes the rate; the new rate applies
from the next drawn mask.

Per-sample masks (``per_sample=True``) exist for ``nn.Linear`` only (a recurrent kernel takes one
weight for the whole batch): the output is recomputed by a forward hook as
``x_n (m_n * W)^T / (1 - p) + b`` with a mask per sample (memory: batch x out x in), replacing
the module's unmasked output (so the plain product is computed once more than needed).

Recurrent modules: PyTorch's RNN modules re-read their weights at every call when they are
parametrized (``_update_flat_weights``), so masks are applied; on CUDA the masked weights are not
one contiguous cuDNN buffer, so cuDNN copies them each call (PyTorch warns once) -- do not call
``flatten_parameters()`` on a module with weight dropout (on the CPU it is a no-op). The state
dict stores a masked parameter as ``parametrizations.<name>.original`` (plus the schedule's
``parametrizations.<name>.0.schedule_step``): load plain checkpoints before applying
:func:`weight_dropout`, or into a module that has it. Remove the dropout with
``torch.nn.utils.parametrize.remove_parametrizations(module, name, leave_parametrized=False)``.

The expected loss of a linear layer with weight dropout read out linearly is exact in closed
form: :func:`linear_weight_dropout_objective` (the corrected DropConnect identity of
:func:`structdrop.torch.dropconnect_regularizer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from .._migration import renamed_keywords
from ._orders import init_positional_became_keyword, reordered
from ._schemes import strength
from .objectives import dropconnect_regularizer
from .schedules import ScheduledDropRate

__all__ = [
    "WeightDropout",
    "linear_weight_dropout_objective",
    "redraw_weight_masks",
    "weight_dropout",
]

_REDRAW = ("call", "manual")


class WeightDropout(ScheduledDropRate):
    """The parametrization ``w -> w * m / (1 - p)`` (see the module docstring).

    Args:
        p: drop probability of each weight entry, in [0, 1); or
        theta: the retain probability ``1 - p`` in (0, 1]; exactly one of them, by keyword
            (``WeightDropout(p)`` by position, the form before 1.0, warns).
        per_sample: leave the weight unmasked (a forward hook applies per-sample masks;
            Linear only).
        redraw: ``"call"`` (a new mask per forward call of the module) or ``"manual"``.
        warmup_steps, warmup: drop-rate warm-up, as :class:`~structdrop.torch.DropBlock2d`.
        generator: a ``torch.Generator`` on the weight's device (default: torch's global one).

    Raises:
        ValueError: not exactly one of ``p`` and ``theta``, a value out of range, or an unknown
            ``redraw``.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> drop = sdt.WeightDropout(p=0.5).eval()
        >>> bool((drop(torch.ones(2, 2)) == 1).all())
        True
    """

    @init_positional_became_keyword("WeightDropout", 0, ("p",))
    def __init__(
        self,
        *,
        p: float | None = None,
        theta: float | None = None,
        per_sample: bool = False,
        redraw: str = "call",
        warmup_steps: int = 0,
        warmup: str = "linear",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self._init_schedule(strength(p, theta)[0], warmup_steps, warmup)
        if redraw not in _REDRAW:
            raise ValueError(f"redraw must be one of {_REDRAW}, got {redraw!r}")
        self.redraw = redraw
        self.per_sample = bool(per_sample)
        self.generator = generator
        self.stale = True
        self._mask: torch.Tensor | None = None
        self._mask_rate = 0.0  # the drop rate self._mask was drawn at: its scale is 1/(1 - it)

    def extra_repr(self) -> str:
        return f"p={self.target_p}, per_sample={self.per_sample}" + self._schedule_repr()

    def mask(self, weight: torch.Tensor) -> torch.Tensor:
        """The current 0/1 keep mask (bool), drawn anew when stale or when the weight's shape
        changed.

        Returns:
            A bool tensor of ``weight``'s shape on its device (True: kept).

        Raises:
            Nothing of its own (torch's errors for a generator on another device).

        Example:
            >>> import torch, structdrop.torch as sdt
            >>> sdt.WeightDropout(p=0.5).mask(torch.ones(2, 3)).shape
            torch.Size([2, 3])
        """
        m = self._mask
        if self.stale or m is None or m.shape != weight.shape or m.device != weight.device:
            dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
            u = torch.empty(weight.shape, dtype=dtype, device=weight.device).uniform_(
                generator=self.generator
            )
            self._mask_rate = self.p
            m = u >= self._mask_rate
            self._mask = m
            self.stale = False
        return m

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or self.per_sample:
            return weight
        keep = self.mask(weight).to(weight.dtype)
        # The scale of the rate the mask was drawn at (a kept "manual" mask may predate a schedule
        # step): E[keep] / (1 - that rate) = 1 exactly.
        return weight * keep * (1.0 / (1.0 - self._mask_rate))


def _mark_stale(module: nn.Module, args: object) -> None:
    for param in _dropouts(module):
        if param.redraw == "call":
            param.stale = True


def _parametrization_list(module: nn.Module, name: str) -> parametrize.ParametrizationList:
    """The parametrizations of ``module.<name>`` (torch registers ``module.parametrizations``, a
    ModuleDict, with the first one; ``Module.__getattr__`` is typed for tensors and modules)."""
    plists = module.parametrizations
    assert isinstance(plists, nn.ModuleDict)
    plist = plists[name]
    assert isinstance(plist, parametrize.ParametrizationList)
    return plist


def _dropouts(module: nn.Module) -> Iterable[WeightDropout]:
    plist = getattr(module, "parametrizations", None)
    if plist is None:
        return []
    return [p for name in plist for p in plist[name] if isinstance(p, WeightDropout)]


def _per_sample_linear(module: nn.Linear, args: tuple, output: torch.Tensor) -> torch.Tensor:
    param = next(q for q in _parametrization_list(module, "weight") if isinstance(q, WeightDropout))
    p = param.p
    if not param.training or p == 0.0:
        return output
    x = args[0]
    w = module.weight  # the parametrization leaves it unmasked in per-sample mode
    flat = x.reshape(-1, x.shape[-1])
    dtype = torch.float64 if w.dtype == torch.float64 else torch.float32
    u = torch.empty((flat.shape[0], *w.shape), dtype=dtype, device=w.device).uniform_(
        generator=param.generator
    )
    masked = w.unsqueeze(0) * (u >= p).to(w.dtype)
    out = torch.bmm(masked, flat.unsqueeze(-1)).squeeze(-1) * (1.0 / (1.0 - p))
    if module.bias is not None:
        out = out + module.bias
    return out.reshape(*x.shape[:-1], w.shape[0])


def weight_dropout(
    module: nn.Module,
    names: str | Iterable[str] = ("weight",),
    *,
    p: float | None = None,
    theta: float | None = None,
    per_sample: bool = False,
    redraw: str = "call",
    warmup_steps: int = 0,
    warmup: str = "linear",
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Apply DropConnect to the named weights of ``module`` in place; returns the module.

    Args:
        module: any module (``nn.Linear``, ``nn.Conv2d``, ``nn.LSTM``, ``nn.GRU``, ...).
        names: the parameters to mask, e.g. ``("weight_hh_l0",)`` for an LSTM's recurrent weight.
        p: drop probability in [0, 1); or ``theta``, the retain probability in (0, 1] (one of them).
        per_sample: a mask per sample instead of per call (``nn.Linear`` and ``names=("weight",)``
            only).
        redraw: ``"call"``: a new mask at every forward call; ``"manual"``: only after
            :func:`redraw_weight_masks` (one mask over a sequence fed step by step; it keeps the
            scale of the rate it was drawn at when the schedule changes the rate).
        warmup_steps, warmup: drop-rate warm-up stepped by :class:`DropRateScheduler`.
        generator: a ``torch.Generator`` on the weights' device.

    Raises:
        ValueError: a name is not a parameter of the module, is already weight-dropped, the
            arguments are out of range, or ``per_sample`` is asked of anything but a Linear weight.
        TypeError: ``module`` is not an ``nn.Module``.

    Returns:
        ``module`` itself, with the parametrizations registered.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> lstm = sdt.weight_dropout(torch.nn.LSTM(4, 8), ("weight_hh_l0",), p=0.5)
        >>> lstm(torch.randn(3, 2, 4))[0].shape
        torch.Size([3, 2, 8])
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names:
        raise ValueError("names must name at least one parameter")
    rate = strength(p, theta)[0]
    if per_sample and (not isinstance(module, nn.Linear) or names != ("weight",)):
        raise ValueError(
            "per_sample masks need an nn.Linear and names=('weight',): other modules take "
            "one weight for the whole batch"
        )
    params = dict(module.named_parameters(recurse=False))
    for name in names:
        if parametrize.is_parametrized(module, name) and any(
            isinstance(q, WeightDropout) for q in _parametrization_list(module, name)
        ):
            raise ValueError(f"{name!r} of {type(module).__name__} already has weight dropout")
        if name not in params and not parametrize.is_parametrized(module, name):
            raise ValueError(
                f"{type(module).__name__} has no parameter {name!r}; it has {sorted(params)}"
            )
    first = not _dropouts(module)
    for name in names:
        param = WeightDropout(
            p=rate,
            per_sample=per_sample,
            redraw=redraw,
            warmup_steps=warmup_steps,
            warmup=warmup,
            generator=generator,
        )
        parametrize.register_parametrization(module, name, param)
    if first:
        module.register_forward_pre_hook(_mark_stale)
    if per_sample:
        module.register_forward_hook(_per_sample_linear)
    return module


def redraw_weight_masks(module: nn.Module) -> None:
    """Mark the weight-dropout masks of ``module`` and its sub-modules stale (drawn anew at next
    use).

    Returns:
        None.

    Raises:
        AttributeError: ``module`` has no ``modules()`` (not an ``nn.Module``).

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> cell = sdt.weight_dropout(torch.nn.LSTMCell(4, 8), ("weight_hh",), p=0.5,
        ...                           redraw="manual")
        >>> sdt.redraw_weight_masks(cell)  # a new mask for the next sequence
    """
    for m in module.modules():
        if isinstance(m, WeightDropout):
            m.stale = True


def _linear_kinds(named: Mapping[str, Any]) -> bool:
    """Whether the arguments are of their kinds (tensors and ``nn.Linear`` modules)."""
    kinds = {"batch_inputs": torch.Tensor, "batch_targets": torch.Tensor}
    return all(
        isinstance(value, kinds.get(name, nn.Linear))
        for name, value in named.items()
        if name in ("batch_inputs", "batch_targets", "readout", "layer")
    )


@renamed_keywords("linear_weight_dropout_objective", targets="batch_targets", inputs="batch_inputs")
@reordered(
    "linear_weight_dropout_objective",
    0,
    ("batch_inputs", "batch_targets", "readout", "layer"),
    ("batch_targets", "readout", "layer", "batch_inputs"),
    _linear_kinds,
)
def linear_weight_dropout_objective(
    batch_inputs: torch.Tensor,
    batch_targets: torch.Tensor,
    readout: nn.Linear,
    layer: nn.Linear,
) -> torch.Tensor:
    """``E ||Y - readout(layer(X))||^2`` over the weight-dropout masks of ``layer``, exactly.

    For the linear network ``readout(layer(x))`` (no non-linearity between) with weight dropout on
    ``layer.weight``, the expectation is ``||Y - readout(layer(X))||^2`` at the unmasked weights
    plus the corrected DropConnect regulariser ``beta sum_i ||u_i||^2 sum_j W_ij^2 ||x_j||^2``
    (:func:`structdrop.torch.dropconnect_regularizer` with ``U = readout.weight``,
    ``V = layer.weight^T``, ``G = X^T``; not the paper's Theorem 13, which holds only for
    uncorrelated inputs), ``beta = p / (1 - p)`` at the layer's current drop rate. It is the same
    for per-sample and per-call masks, and differentiable in all weights and the data.

    Inputs before targets, then the modules in the order the data meets them from the output
    (as ``objective(scheme, X, Y, U, V)``); the order before 1.0, ``(targets, readout, layer,
    inputs)``, is accepted with a FutureWarning (modules and tensors tell the orders apart).

    Args:
        batch_inputs: N x b, batch-first (``inputs=`` before 1.0).
        batch_targets: N x a, batch-first (``targets=`` before 1.0).
        readout: the ``nn.Linear(d, a)`` read-out (its bias, if any, is included).
        layer: the ``nn.Linear(b, d)`` with :func:`weight_dropout` on its weight (its bias is not
            masked); without weight dropout the regulariser is 0.

    Returns:
        A 0-dim tensor, differentiable in the weights and the data.

    Raises:
        TypeError: ``layer`` or ``readout`` is not an ``nn.Linear``.
        ValueError: weight dropout on the bias or next to another parametrization, or shapes
            that do not agree.

    Example:
        >>> import torch, structdrop.torch as sdt
        >>> layer = sdt.weight_dropout(torch.nn.Linear(3, 4, bias=False), p=0.5)
        >>> readout = torch.nn.Linear(4, 2, bias=False)
        >>> X, Y = torch.randn(5, 3), torch.randn(5, 2)
        >>> bool(sdt.linear_weight_dropout_objective(X, Y, readout, layer) > 0)
        True
    """
    inputs, targets = batch_inputs, batch_targets
    if not isinstance(layer, nn.Linear) or not isinstance(readout, nn.Linear):
        raise TypeError("layer and readout must be torch.nn.Linear modules")
    drops = list(_dropouts(layer))
    if parametrize.is_parametrized(layer, "bias") and any(
        isinstance(q, WeightDropout) for q in _parametrization_list(layer, "bias")
    ):
        raise ValueError(
            "the closed form covers weight dropout on layer.weight only, not on its bias"
        )
    if parametrize.is_parametrized(layer, "weight"):
        plist = _parametrization_list(layer, "weight")
        weight = plist.original
        if len(plist) != 1:
            raise ValueError("layer.weight must carry weight dropout as its only parametrization")
    else:
        weight = layer.weight
    if inputs.dim() != 2 or inputs.shape[1] != weight.shape[1]:
        raise ValueError(f"batch_inputs must be N x {weight.shape[1]}, got {tuple(inputs.shape)}")
    hidden = inputs @ weight.T
    if layer.bias is not None:
        hidden = hidden + layer.bias
    out = hidden @ readout.weight.T
    if readout.bias is not None:
        out = out + readout.bias
    if targets.shape != out.shape:
        raise ValueError(
            f"batch_targets must be N x a = {tuple(out.shape)}, got {tuple(targets.shape)}"
        )
    fit = (targets - out).square().sum()
    p = drops[0].p if drops else 0.0
    if p == 0.0:
        return fit
    return fit + dropconnect_regularizer(readout.weight, weight.T, inputs.T, 1.0 - p)

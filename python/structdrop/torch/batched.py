"""Many independent runs of Algorithm 1 (masked SGD on a one-hidden-layer linear network) at once.

The R runs are batched tensors (R x a x d, R x b x d) updated with batched matrix products on the
CPU or a CUDA device. Random numbers come from a counter-based hash (:mod:`._random`), generated
on the device for a chunk of steps at a time, so a run's masks and samples depend only on its own
seed, never on R or on the device, and a chunk of steps needs no host synchronisation: on CUDA the
whole chunk (random numbers and steps) can be captured once as a CUDA graph and replayed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .._results import ResultEquality
from .._validation import as_float_array, as_int, as_nonnegative_float
from ._random import run_keys, uniform_field
from ._schemes import SchemeSpec, as_scheme_spec, check_width, cover_counts

__all__ = ["BatchedTrainResult", "batched_train"]

_STREAM_MASK = 1
_STREAM_SAMPLE = 2
_CHUNK_ELEMENTS = 1 << 24  # random numbers generated at once (bounds the int64 temporaries)
_RECORD_RUNS = 2048  # runs per batch when evaluating objectives (bounds R x a x b temporaries)
_GRAPH_STEPS = 50  # default steps per captured CUDA graph


@dataclass(frozen=True, eq=False)
class BatchedTrainResult(ResultEquality):
    """Result of :func:`batched_train` (NumPy arrays on the host, float64 objectives).

    Attributes:
        U: final U of every run, R x a x d (the training dtype).
        V: final V of every run, R x b x d.
        record_iterations: the iterations at which objectives were recorded (0 = initial weights).
        stochastic_objective: R x n_records, ||Y - U diag(z/mu) V^T X||^2 over all N samples with
            the mask z that the next step draws for its first sample (for DropConnect
            ||Y - U ((Z/theta) * V)^T X||^2).
        deterministic_objective: R x n_records, the exact expectation of the stochastic objective
            (Lemma 1 / Lemma 10 / corrected Theorem 13).
        diverged: R booleans: a recorded objective of the run was not finite.
        seeds: the per-run seeds (run r used ``seed + r``).
        seconds: wall-clock time of the training loop (including recordings), after synchronisation.
        device: the torch device the runs used.
        dtype: the training dtype name.
        cuda_graph: whether the steps were replayed from CUDA graphs.

    Example:
        >>> import numpy as np, structdrop.torch as sdt
        >>> from structdrop.schemes import Dropout
        >>> X, Y, U0, V0 = np.eye(3), np.ones((1, 3)), np.ones((1, 2)), np.ones((3, 2))
        >>> res = sdt.batched_train(X, Y, U0, V0, Dropout(0.5), lr=0.01, iterations=4,
        ...                         device="cpu")
        >>> res.final_objective.shape, res.U.shape
        ((1,), (1, 1, 2))
    """

    U: np.ndarray
    V: np.ndarray
    record_iterations: np.ndarray
    stochastic_objective: np.ndarray
    deterministic_objective: np.ndarray
    diverged: np.ndarray
    seeds: np.ndarray
    seconds: float
    device: str
    dtype: str
    cuda_graph: bool

    @property
    def final_objective(self) -> np.ndarray:
        """Deterministic objective of every run at the last recording (R values)."""
        return self.deterministic_objective[:, -1]


def _as_device_tensor(
    name: str, value: object, ndims: tuple[int, ...], device, dtype
) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")
        if value.dim() not in ndims:
            raise ValueError(
                f"{name} must be {' or '.join(f'{n}-D' for n in ndims)}, got {tuple(value.shape)}"
            )
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        return value.detach().to(device=device, dtype=dtype)
    array = as_float_array(name, value, ndim=ndims)
    return torch.as_tensor(array).to(device=device, dtype=dtype)


class _Problem:
    """Device-side constants of a batched run: data, masks' shape, recording Grams."""

    def __init__(self, X, Y, spec: SchemeSpec, a: int, b: int, d: int, device, dtype):
        self.spec = spec
        self.a, self.b, self.d = a, b, d
        self.N = X.shape[1]
        self.device = device
        self.dtype = dtype
        # N x (b + a): one row per sample, inputs then targets, so one gather fetches both (a copy)
        self.XYt = torch.cat([X.T, Y.T], dim=1).contiguous()
        X64 = X.to(torch.float64)
        Y64 = Y.to(torch.float64)
        self.S = X64 @ X64.T  # b x b
        self.P = Y64 @ X64.T  # a x b
        self.yy = float(Y64.square().sum())
        # 1 / P(unit i kept): overlapping DropBlock's per-unit rescaling (unused by the others)
        self.inv_keep = torch.ones(d, device=device, dtype=dtype)
        if spec.kind == "overlapping":
            counts = cover_counts(d, spec.block_size)
            keep = torch.tensor([(1.0 - spec.gamma) ** c for c in counts], dtype=torch.float64)
            self.inv_keep = (1.0 / keep).to(device=device, dtype=dtype)
        # slots of uniforms one step needs for its mask
        if spec.kind == "none":
            self.slots = 0
        elif spec.kind == "dropout":
            self.slots = d
        elif spec.kind == "dropblock":
            self.slots = d // spec.block_size
        elif spec.kind == "overlapping":
            self.slots = d - spec.block_size + 1
        else:
            self.slots = b * d
        # C-bar on its band (offsets 0..r-1; symmetric) for the recorded regulariser
        self.band: list[tuple[int, torch.Tensor]] = []
        if spec.kind in ("dropout", "dropblock", "overlapping"):
            from .objectives import characteristic_matrix

            cbar = characteristic_matrix(spec, d, dtype=torch.float64)
            for o in range(spec.block_size):
                diag = torch.diagonal(cbar, offset=o).clone()
                if bool((diag != 0).any()):
                    self.band.append((o, (diag * (1.0 if o == 0 else 2.0)).to(device)))

    def masks(self, u: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Scaled masks from uniforms u (... x slots): ... x d (... x b x d for DropConnect)."""
        spec = self.spec
        lead = u.shape[:-1]
        if spec.kind in ("dropout", "dropconnect"):
            z = (u < spec.theta).to(dtype) * (1.0 / spec.theta)
            return z if spec.kind == "dropout" else z.reshape(*lead, self.b, self.d)
        if spec.kind == "dropblock":
            r = spec.block_size
            keep = (u < spec.theta).to(dtype) * (1.0 / spec.theta)
            return keep.unsqueeze(-1).expand(*lead, self.slots, r).reshape(*lead, self.d)
        # overlapping: unit i dropped when a seed in [i - r + 1, i] fired
        r = spec.block_size
        seeds = (u < spec.gamma).to(dtype).reshape(-1, 1, self.slots)
        dropped = F.max_pool1d(F.pad(seeds, (r - 1, r - 1)), kernel_size=r, stride=1)
        return ((1.0 - dropped) * self.inv_keep.to(dtype)).reshape(*lead, self.d)

    def fit64(self, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """||Y - U V^T X||^2 per run from U (R x a x d), V (R x b x d), in float64 via Gram
        matrices."""
        A = U @ V.transpose(1, 2)  # R x a x b
        return self.yy - 2.0 * (A * self.P).sum((1, 2)) + ((A @ self.S) * A).sum((1, 2))

    def regularizer64(self, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        R = U.shape[0]
        if spec.kind == "none":
            return torch.zeros(R, dtype=torch.float64, device=U.device)
        if spec.kind == "dropconnect":
            sdiag = torch.diagonal(self.S)
            return spec.beta * (U.square().sum(1) * (V.square() * sdiag[None, :, None]).sum(1)).sum(
                1
            )
        SV = self.S @ V  # R x b x d; (V^T S V)_ij = sum_k V_ki (SV)_kj
        total = torch.zeros(R, dtype=torch.float64, device=U.device)
        d = self.d
        for o, weights in self.band:
            uu = (U[:, :, : d - o] * U[:, :, o:]).sum(1)
            vv = (V[:, :, : d - o] * SV[:, :, o:]).sum(1)
            total = total + (uu * vv * weights).sum(1)
        return total


def batched_train(
    X: object,
    Y: object,
    U0: object,
    V0: object,
    scheme: object,
    lr: float,
    iterations: int,
    runs: int = 1,
    batch_size: int = 1,
    record_every: int = 100,
    seed: int = 0,
    lr_decay: float | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    cuda_graph: bool = False,
    chunk_steps: int | None = None,
) -> BatchedTrainResult:
    """Run ``runs`` independent copies of Algorithm 1 at once (the semantics
    of ``structdrop.train``).

    Each step of each run draws ``batch_size`` samples uniformly with replacement, each with its own
    mask z (the scheme's distribution, divided by its mean: ``z/theta``, or ``z_i/mu_i`` for
    OverlappingDropBlock), and applies the mean of the per-sample steps (Algorithm 1, lines 7-9;
    both updates from the old U, V)::

        eps = U D V^T x - y,   U <- U - eta eps x^T V D,   V <- V - eta x eps^T U D,   D = diag(z)

    i.e. ``eta`` times the gradient of ``(1/2)||eps||^2`` (the paper's ``(eta/theta) ...``).
    DropConnect masks V elementwise instead: ``V~ = (Z/theta) * V``, ``U <- U - eta eps x^T V~``,
    ``V <- V - eta (x eps^T U) * (Z/theta)``. Step t = 1, 2, ... uses ``lr`` or, with ``lr_decay =
    t0``, ``lr / (1 + (t - 1)/t0)``.

    Recordings at steps 0, record_every, 2 record_every, ... and the last step, in float64:
    ``deterministic_objective`` is the scheme's exact objective at (U_t, V_t) (Lemma 1, Lemma 10,
    corrected Theorem 13) and ``stochastic_objective`` is ``||Y - U_t D V_t^T X||^2`` over all N
    samples with the mask that step t + 1 draws for its first sample (independent of U_t, V_t, so
    its expectation is the deterministic objective). Both use the Gram matrices X X^T, Y X^T.

    Differences from ``structdrop.train``: the random numbers come from a different generator (a
    counter-based hash, see :mod:`structdrop.torch._random`), so runs agree in distribution, not
    draw by draw; a run that diverges does not raise: its recorded objectives become non-finite and
    ``result.diverged`` flags it (checked once, at the end).

    Args:
        X: b x N inputs; Y: a x N targets (arrays or tensors; copied once to the device).
        U0, V0: initial weights, a x d and b x d (shared by all runs) or runs x a x d, runs x b x d.
        scheme: a :mod:`structdrop.schemes` object (NoDropout, Dropout, DropBlock,
            OverlappingDropBlock, DropConnect).
        lr: step size eta > 0.  iterations: steps per run (>= 0).
        runs: R, the number of independent runs.  batch_size: samples per step.
        record_every: record the objectives every this many steps (and at 0 and at the end).
        seed: run r uses seed ``seed + r`` (``seed + runs <= 2**63``); its masks and samples depend
            only on that seed, not on R, the device, the dtype or ``record_every``.
        lr_decay: None or t0 > 0 (see above).
        device: torch device (default: CUDA when available, else CPU).
        dtype: torch.float64 (default) or torch.float32 for the training arithmetic; objectives are
            recorded in float64.
        cuda_graph: capture each chunk of steps as a CUDA graph and replay it (CUDA only).
        chunk_steps: steps whose random numbers are generated at once, and steps per CUDA graph
            (default: as many as fit a fixed memory budget, at most ``record_every``, and at most
            50 with ``cuda_graph``; one graph is captured per distinct chunk length, on the first
            call, so graphs pay off when ``iterations`` is many times ``chunk_steps``).

    Returns:
        :class:`BatchedTrainResult` (NumPy arrays). The host waits for the device only at the start
        and at the end: recordings write into preallocated device tensors.

    Raises:
        TypeError: ``scheme`` is not a scheme, or ``dtype`` is neither float32 nor float64.
        ValueError: a count or rate out of range (``lr <= 0``, ``runs < 1``, ...), shapes that do
            not agree, a block size that does not fit d, or ``cuda_graph`` without CUDA.

    Example:
        >>> import numpy as np, structdrop.torch as sdt
        >>> from structdrop.schemes import Dropout
        >>> rng = np.random.default_rng(0)
        >>> X, Y = rng.standard_normal((3, 20)), rng.standard_normal((2, 20))
        >>> U0, V0 = 0.1 * rng.standard_normal((2, 4)), 0.1 * rng.standard_normal((3, 4))
        >>> res = sdt.batched_train(X, Y, U0, V0, Dropout(0.5), lr=0.01, iterations=50, runs=3,
        ...                         record_every=25, device="cpu")
        >>> res.deterministic_objective.shape, bool(res.diverged.any())
        ((3, 3), False)
    """
    spec = as_scheme_spec(scheme)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if cuda_graph and device.type != "cuda":
        raise ValueError("cuda_graph=True needs a CUDA device")
    runs = as_int("runs", runs, minimum=1)
    iterations = as_int("iterations", iterations, minimum=0)
    batch_size = as_int("batch_size", batch_size, minimum=1)
    record_every = as_int("record_every", record_every, minimum=1)
    seed = as_int("seed", seed, minimum=0)
    lr = as_nonnegative_float("lr", lr)
    if lr == 0:
        raise ValueError("lr must be > 0")
    decay = None if lr_decay is None else as_nonnegative_float("lr_decay", lr_decay)
    if decay == 0:
        raise ValueError("lr_decay must be None (constant step size) or > 0")
    if seed + runs > 2**63:
        raise ValueError(f"seed + runs must be <= 2**63, got seed={seed}, runs={runs}")

    Xd = _as_device_tensor("X", X, (2,), device, dtype)
    Yd = _as_device_tensor("Y", Y, (2,), device, dtype)
    b, N = Xd.shape
    a = Yd.shape[0]
    if Yd.shape[1] != N:
        raise ValueError(f"X is b x N and Y is a x N: got X {tuple(Xd.shape)}, Y {tuple(Yd.shape)}")
    U = _as_device_tensor("U0", U0, (2, 3), device, dtype)
    V = _as_device_tensor("V0", V0, (2, 3), device, dtype)
    d = U.shape[-1]
    if U.shape[-2] != a or (U.dim() == 3 and U.shape[0] != runs):
        raise ValueError(
            f"U0 must be a x d or runs x a x d with a={a}, runs={runs}, got {tuple(U.shape)}"
        )
    if V.shape[-2] != b or V.shape[-1] != d or (V.dim() == 3 and V.shape[0] != runs):
        raise ValueError(
            f"V0 must be b x d or runs x b x d with b={b}, d={d}, runs={runs}, got {tuple(V.shape)}"
        )
    check_width(spec, d)
    # private, contiguous working copies (updated in place)
    U = (U.expand(runs, a, d) if U.dim() == 2 else U).clone(memory_format=torch.contiguous_format)
    V = (V.expand(runs, b, d) if V.dim() == 2 else V).clone(memory_format=torch.contiguous_format)

    prob = _Problem(Xd, Yd, spec, a, b, d, device, dtype)
    seeds = torch.arange(seed, seed + runs, dtype=torch.int64, device=device)
    keys_mask = run_keys(seeds, _STREAM_MASK)
    keys_sample = run_keys(seeds, _STREAM_SAMPLE)
    step_counter = torch.zeros((), dtype=torch.int64, device=device)

    per_step = prob.slots + batch_size
    if chunk_steps is None:
        chunk_steps = max(1, min(record_every, _CHUNK_ELEMENTS // max(1, runs * per_step)))
        if cuda_graph:  # a short graph, replayed many times, amortises its capture
            chunk_steps = min(chunk_steps, _GRAPH_STEPS)
    chunk_steps = as_int("chunk_steps", chunk_steps, minimum=1)

    points = list(range(0, iterations + 1, record_every))
    if points[-1] != iterations:
        points.append(iterations)
    n_rec = len(points)
    stoch = torch.empty(runs, n_rec, dtype=torch.float64, device=device)
    det = torch.empty(runs, n_rec, dtype=torch.float64, device=device)
    inv_b = 1.0 / batch_size
    coef = -lr * inv_b
    zero = torch.zeros(1, 1, 1, dtype=dtype, device=device)  # ignored input of baddbmm with beta=0

    def run_chunk(T: int) -> None:
        steps = step_counter + torch.arange(T, dtype=torch.int64, device=device)
        z_all, idx_all = _draw(prob, keys_mask, keys_sample, steps, batch_size)
        if decay is not None:
            coefs = coef / (1.0 + steps.to(dtype) / decay)  # T, on the device
        for i in range(T):
            xy = prob.XYt[idx_all[:, i]]  # R x B x (b + a)
            xb, yb = xy[..., :b], xy[..., b:]
            if spec.kind == "dropconnect":
                assert z_all is not None  # DropConnect always draws masks
                Z = z_all[:, i]  # R x B x b x d: one mask per sample
                if batch_size == 1:
                    h = torch.bmm(xb, V * Z[:, 0])
                else:
                    h = torch.einsum("rsb,rsbd->rsd", xb, V.unsqueeze(1) * Z)
            else:
                h = torch.bmm(xb, V)
                if z_all is not None:  # drawn when the scheme has mask slots
                    z = z_all[:, i]  # R x B x d: one mask per sample
                    h = h * z
            eps = torch.baddbmm(yb, h, U.transpose(1, 2), beta=-1.0)  # U D V^T x - y, R x B x a
            # both updates from the old U: eU = -(eta/B) eps^T U first, then U in place
            if decay is None:
                eU = torch.baddbmm(zero, eps, U, beta=0.0, alpha=coef)
                U.baddbmm_(eps.transpose(1, 2), h, alpha=coef)
            else:
                eps = eps.mul_(coefs[i])
                eU = torch.bmm(eps, U)
                U.baddbmm_(eps.transpose(1, 2), h)
            if spec.kind == "dropconnect":
                if batch_size == 1:
                    V.addcmul_(torch.bmm(xb.transpose(1, 2), eU), Z[:, 0])
                else:
                    V.add_(torch.einsum("rsb,rsd,rsbd->rbd", xb, eU, Z))
            else:
                if prob.slots:
                    eU = eU.mul_(z)
                V.baddbmm_(xb.transpose(1, 2), eU)
        step_counter.add_(T)

    def record(k: int) -> None:
        rec_step = torch.full((1,), points[k], dtype=torch.int64, device=device)
        for start in range(0, runs, _RECORD_RUNS):
            stop = min(runs, start + _RECORD_RUNS)
            U64 = U[start:stop].to(torch.float64)
            V64 = V[start:stop].to(torch.float64)
            det[start:stop, k] = prob.fit64(U64, V64) + prob.regularizer64(U64, V64)
            if prob.slots:
                # the mask that step t + 1 draws for its first sample (independent of U_t, V_t)
                u = uniform_field(keys_mask[start:stop], rec_step, prob.slots, prob.dtype)
                z = prob.masks(u, torch.float64)[:, 0]
                Vz = V64 * z if spec.kind == "dropconnect" else V64 * z[:, None, :]
                stoch[start:stop, k] = prob.fit64(U64, Vz)
            else:
                stoch[start:stop, k] = det[start:stop, k]

    graphs: dict[int, Callable[[], None]] = {}

    def chunk(T: int) -> None:
        if not cuda_graph:
            run_chunk(T)
            return
        replay = graphs.get(T)
        if replay is None:
            replay = _capture(run_chunk, T, (U, V, step_counter), device)
            graphs[T] = replay
        replay()

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start_time = time.perf_counter()
    with torch.no_grad():
        record(0)
        done = 0
        for k in range(1, n_rec):
            remaining = points[k] - done
            while remaining > 0:
                T = min(chunk_steps, remaining)
                chunk(T)
                remaining -= T
            done = points[k]
            record(k)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start_time
    diverged = ~torch.isfinite(det).all(1) | ~torch.isfinite(stoch).all(1)
    return BatchedTrainResult(
        U=U.cpu().numpy(),
        V=V.cpu().numpy(),
        record_iterations=np.asarray(points, dtype=np.int64),
        stochastic_objective=stoch.cpu().numpy(),
        deterministic_objective=det.cpu().numpy(),
        diverged=diverged.cpu().numpy(),
        seeds=seeds.cpu().numpy(),
        seconds=seconds,
        device=str(device),
        dtype=str(dtype).replace("torch.", ""),
        cuda_graph=bool(cuda_graph),
    )


def _draw(
    prob: _Problem,
    keys_mask: torch.Tensor,
    keys_sample: torch.Tensor,
    steps: torch.Tensor,
    batch_size: int,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Scaled masks (R x T x B x d, or R x T x B x b x d) and sample indices (R x T x B) of the
    steps."""
    z_all = None
    R, T = keys_mask.shape[0], steps.shape[0]
    if prob.slots:
        u = uniform_field(keys_mask, steps, batch_size * prob.slots, prob.dtype)
        z_all = prob.masks(u.reshape(R, T, batch_size, prob.slots), prob.dtype)
    u_idx = uniform_field(keys_sample, steps, batch_size, torch.float64)
    idx_all = (u_idx * prob.N).to(torch.int64).clamp_(max=prob.N - 1)
    return z_all, idx_all


def _capture(
    run_chunk: Callable[[int], None], T: int, state: tuple[torch.Tensor, ...], device
) -> Callable[[], None]:
    """Capture ``run_chunk(T)`` as a CUDA graph; the state tensors are restored after warm-up."""
    saved = [s.clone() for s in state]
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        run_chunk(T)  # warm-up (allocator, kernels) outside the graph
    torch.cuda.current_stream(device).wait_stream(stream)
    for s, v in zip(state, saved):
        s.copy_(v)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run_chunk(T)
    # capture does not execute the work; state is unchanged until the first replay
    return graph.replay

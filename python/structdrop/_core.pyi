# Type stubs for the compiled extension structdrop._core (C++17/Eigen, pybind11).
# Arrays are float64 C-contiguous unless stated; the Python API validates before calling.
from collections.abc import Callable, Sequence
from typing import ClassVar, final

import numpy as np
import numpy.typing as npt

# --- mask schemes (cpp/objectives.hpp; cpp/bindings/scheme_bindings.cpp) ---
@final
class SchemeKind:
    """The mask distributions of the compiled core (a pybind11 enum)."""

    none: ClassVar[SchemeKind]
    dropout: ClassVar[SchemeKind]
    dropblock: ClassVar[SchemeKind]
    overlapping_dropblock: ClassVar[SchemeKind]
    dropconnect: ClassVar[SchemeKind]
    __members__: ClassVar[dict[str, SchemeKind]]
    def __init__(self, value: int) -> None: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __ne__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

@final
class SchemeParams:
    """One scheme's parameters (immutable); built by MaskScheme._core_params()."""

    def __init__(
        self, kind: SchemeKind, theta: float = 1.0, block_size: int = 1, gamma: float = 0.0
    ) -> None: ...
    @property
    def kind(self) -> SchemeKind: ...
    @property
    def theta(self) -> float: ...
    @property
    def block_size(self) -> int: ...
    @property
    def gamma(self) -> float: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

# --- spectral k-support norm and its prox (cpp/ksupport.hpp) ---
def ksupport_norm_sq_sorted(s: npt.NDArray[np.float64], r: int) -> tuple[float, int]: ...
def prox_sweep(
    m: npt.NDArray[np.float64], r: int, beta: float
) -> tuple[npt.NDArray[np.float64], int, int, float]: ...
def prox_search(
    m: npt.NDArray[np.float64], r: int, beta: float
) -> tuple[npt.NDArray[np.float64], int, int, float]: ...

# Selection kernels (cpp/ksupport_select.hpp): x float32 or float64 (C-contiguous), any order/signs;
# out has x's dtype and shape and does not overlap it.
def prox_select(
    x: npt.NDArray[np.floating], r: int, beta: float, out: npt.NDArray[np.floating]
) -> tuple[int, int, float]: ...
def ksupport_norm_sq_select(x: npt.NDArray[np.floating], r: int) -> tuple[float, int]: ...
def prox_rows(
    M: npt.NDArray[np.floating],
    r: int,
    beta: float,
    out: npt.NDArray[np.floating],
    threads: int = 0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64], int]: ...
def prox_batch(
    m: npt.NDArray[np.float64],
    r: npt.NDArray[np.int64],
    beta: npt.NDArray[np.float64],
    threads: int = 0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...

# --- masked SGD, Algorithm 1 (cpp/sgd.hpp, cpp/random.hpp) ---
@final
class SgdJob:
    """One masked-SGD run's inputs (immutable); U0, V0 float64 Fortran-ordered, held not copied."""

    def __init__(
        self,
        U0: npt.NDArray[np.float64],
        V0: npt.NDArray[np.float64],
        scheme: SchemeParams,
        lr: float,
        iterations: int,
        batch_size: int = 1,
        record_every: int = 100,
        seed: int = 0,
        lr_decay: float = 0.0,
    ) -> None: ...
    @property
    def U0(self) -> npt.NDArray[np.float64]: ...
    @property
    def V0(self) -> npt.NDArray[np.float64]: ...
    @property
    def scheme(self) -> SchemeParams: ...
    @property
    def lr(self) -> float: ...
    @property
    def iterations(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def record_every(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def lr_decay(self) -> float: ...

@final
class SgdResult:
    """One run's outputs; the arrays are None unless status == "ok"."""

    @property
    def status(self) -> str: ...  # "ok", "diverged", "cancelled" or "failed"
    @property
    def message(self) -> str: ...
    @property
    def diverged_step(self) -> int: ...
    @property
    def U(self) -> npt.NDArray[np.float64] | None: ...
    @property
    def V(self) -> npt.NDArray[np.float64] | None: ...
    @property
    def record_steps(self) -> npt.NDArray[np.int64] | None: ...
    @property
    def stochastic(self) -> npt.NDArray[np.float64] | None: ...
    @property
    def deterministic(self) -> npt.NDArray[np.float64] | None: ...
    @property
    def seconds(self) -> float: ...

def sgd_train_runs(
    X: npt.NDArray[np.float64],
    Y: npt.NDArray[np.float64],
    jobs: Sequence[SgdJob],
    threads: int = 0,
    progress: Callable[[int, int], object] | None = None,
    interval: float = 0.25,
) -> list[SgdResult]: ...
def sgd_draws(
    scheme: SchemeParams,
    d: int,
    b: int,
    N: int,
    seed: int,
    first_step: int,
    steps: int,
    batch: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]: ...
def sgd_step(
    U: npt.NDArray[np.float64],
    V: npt.NDArray[np.float64],
    Xb: npt.NDArray[np.float64],
    Yb: npt.NDArray[np.float64],
    masks: npt.NDArray[np.uint8],
    scheme: SchemeParams,
    lr: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def sgd_stochastic_loss(
    X: npt.NDArray[np.float64],
    Y: npt.NDArray[np.float64],
    U: npt.NDArray[np.float64],
    V: npt.NDArray[np.float64],
    mask: npt.NDArray[np.uint8],
    scheme: SchemeParams,
) -> float: ...
def philox4x32_10(counter: Sequence[int], key: Sequence[int]) -> list[int]: ...  # 4, 2 -> 4 words
def sgd_kernel_isa() -> str: ...
def set_sgd_kernel_isa(name: str) -> None: ...

# --- exact deterministic objectives (cpp/objectives.hpp) ---
# Schemes are SchemeParams (MaskScheme._core_params()). Arrays float64, C- or Fortran-contiguous.
def objective_moments(
    X: npt.NDArray[np.float64], Y: npt.NDArray[np.float64] | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None, float]: ...
def scheme_stats(
    scheme: SchemeParams, d: int, dense_cbar: bool = True
) -> tuple[
    npt.NDArray[np.float64], float, npt.NDArray[np.float64] | None, npt.NDArray[np.float64] | None
]: ...
def objective_terms(
    scheme: SchemeParams,
    gram: npt.NDArray[np.float64],
    cross: npt.NDArray[np.float64],
    y_sq_norm: float,
    U: npt.NDArray[np.float64],
    V: npt.NDArray[np.float64],
    paper_dropconnect: bool = False,
) -> tuple[float, float]: ...

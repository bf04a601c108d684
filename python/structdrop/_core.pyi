# Type stubs for the compiled extension structdrop._core (C++17/Eigen, pybind11).
# Arrays are float64 C-contiguous unless stated; the Python API validates before calling.
import numpy as np
import numpy.typing as npt

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
def sgd_train_runs(
    X: npt.NDArray[np.float64],
    Y: npt.NDArray[np.float64],
    U0: list[npt.NDArray[np.float64]],
    V0: list[npt.NDArray[np.float64]],
    kind: list[int],
    theta: list[float],
    block_size: list[int],
    gamma: list[float],
    lr: list[float],
    iterations: list[int],
    batch_size: list[int],
    record_every: list[int],
    seed: list[int],
    lr_decay: list[float],
    threads: int = 0,
    progress: object = None,
    interval: float = 0.25,
) -> list[tuple[str, str, int, object, object, object, object, object, float]]: ...
def sgd_draws(
    kind: int,
    theta: float,
    block_size: int,
    gamma: float,
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
    kind: int,
    theta: float,
    block_size: int,
    gamma: float,
    lr: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def sgd_stochastic_loss(
    X: npt.NDArray[np.float64],
    Y: npt.NDArray[np.float64],
    U: npt.NDArray[np.float64],
    V: npt.NDArray[np.float64],
    mask: npt.NDArray[np.uint8],
    kind: int,
    theta: float,
    block_size: int,
    gamma: float,
) -> float: ...
def philox4x32_10(
    counter: tuple[int, int, int, int], key: tuple[int, int]
) -> tuple[int, int, int, int]: ...
def sgd_kernel_isa() -> str: ...
def set_sgd_kernel_isa(name: str) -> None: ...

# --- exact deterministic objectives (cpp/objectives.hpp) ---
# Schemes are (kind, theta, block_size, gamma) = MaskScheme._core_args(); kind: none=0, dropout=1,
# dropblock=2, overlapping_dropblock=3, dropconnect=4. Arrays float64, C- or Fortran-contiguous.
def objective_moments(
    X: npt.NDArray[np.float64], Y: npt.NDArray[np.float64] | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None, float]: ...
def scheme_stats(
    kind: int, theta: float, block_size: int, gamma: float, d: int, dense_cbar: bool = True
) -> tuple[
    npt.NDArray[np.float64], float, npt.NDArray[np.float64] | None, npt.NDArray[np.float64] | None
]: ...
def objective_terms(
    kind: int,
    theta: float,
    block_size: int,
    gamma: float,
    gram: npt.NDArray[np.float64],
    cross: npt.NDArray[np.float64],
    y_sq_norm: float,
    U: npt.NDArray[np.float64],
    V: npt.NDArray[np.float64],
    paper_dropconnect: bool = False,
) -> tuple[float, float]: ...

# Type stubs for the compiled extension structdrop._core (C++17/Eigen, pybind11).
# Arrays are float64 C-contiguous unless stated; the Python API validates before calling.
import numpy as np
import numpy.typing as npt

# --- spectral k-support norm and its prox (cpp/ksupport.hpp) ---
def ksupport_norm_sq_sorted(s: npt.NDArray[np.float64], r: int) -> tuple[float, int]: ...
def prox_sweep(m: npt.NDArray[np.float64], r: int, beta: float) -> tuple[npt.NDArray[np.float64], int, int, float]: ...
def prox_search(m: npt.NDArray[np.float64], r: int, beta: float) -> tuple[npt.NDArray[np.float64], int, int, float]: ...
def prox_batch(
    m: npt.NDArray[np.float64], r: npt.NDArray[np.int64], beta: npt.NDArray[np.float64], threads: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...

# --- exact deterministic objectives (cpp/objectives.hpp) ---
# Schemes are (kind, theta, block_size, gamma) = MaskScheme._core_args(); kind: none=0, dropout=1,
# dropblock=2, overlapping_dropblock=3, dropconnect=4. Arrays float64, C- or Fortran-contiguous.
def objective_moments(
    X: npt.NDArray[np.float64], Y: npt.NDArray[np.float64] | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None, float]: ...
def scheme_stats(
    kind: int, theta: float, block_size: int, gamma: float, d: int, dense_cbar: bool = True
) -> tuple[npt.NDArray[np.float64], float, npt.NDArray[np.float64] | None, npt.NDArray[np.float64] | None]: ...
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

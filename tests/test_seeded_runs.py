"""The same seed gives the same run, pinned by values stored from short seeded runs of each scheme.

The other reproducibility tests compare runs with each other (thread counts, kernels, train and
train_many, builds); they would all pass if every run changed in the same way. These values were
recorded once, so any change to the random stream's layout (which counter draws which sample or
mask bit) or to the order of the arithmetic in the loop shows up here. If such a change is meant,
record the new values with the code in this file and say so in CHANGELOG.md: users' seeds then
give different runs.

The data are small multiples of 1/8, so the data moments (computed by NumPy's BLAS, whose
summation order depends on the library and the CPU) are exact and the stored values hold on any
machine.
"""

import hashlib

import numpy as np
import pytest

import structdrop as sd
from structdrop import _core

SEED = 2026

SCHEMES = {
    "none": sd.NoDropout(),
    "dropout": sd.Dropout(0.75),
    "dropblock": sd.DropBlock(0.5, 2),
    "overlapping": sd.OverlappingDropBlock(3, gamma=0.25),
    "dropconnect": sd.DropConnect(0.8),
}

# (scheme, batch size) -> (sha256 of the final U and V bytes, first 16 hex digits; the last
# recorded deterministic and stochastic objectives, as float.hex) after 40 steps.
STORED_RUNS = {
    ("none", 1): ("cf44206b97cd7f31", "0x1.461507455b494p+2", "0x1.461507455b494p+2"),
    ("none", 3): ("7d401adde9437732", "0x1.451061f32a9b2p+2", "0x1.451061f32a9b2p+2"),
    ("dropout", 1): ("466aa9073e3eb040", "0x1.55efb34d3bed7p+2", "0x1.82aab82f46ae1p+2"),
    ("dropout", 3): ("daee84ffb0572860", "0x1.5369610216d35p+2", "0x1.7da9df2b72c98p+2"),
    ("dropblock", 1): ("de7f39f1adf2862c", "0x1.6f3d516e5f460p+2", "0x1.4613b568358cdp+2"),
    ("dropblock", 3): ("bf7147a42c33135c", "0x1.6a95895cbd9a3p+2", "0x1.3749e131573bcp+2"),
    ("overlapping", 1): ("52030a0b47b3ec68", "0x1.7072c1c412ad4p+2", "0x1.a9d7545f1b2cbp+2"),
    ("overlapping", 3): ("b1155ce7917425f9", "0x1.6be1cba9d2ce0p+2", "0x1.a5a1d492acd1bp+2"),
    ("dropconnect", 1): ("762b272f962d44cc", "0x1.4c79ef6e10894p+2", "0x1.5ee754ba7f40ap+2"),
    ("dropconnect", 3): ("c9ca51145e4aac29", "0x1.4cb684b686885p+2", "0x1.5c6d5bbd127c3p+2"),
}

# scheme -> (sample indices of steps 1..5, two minibatch slots each; np.packbits of the masks as
# hex) drawn for width 6, b = 4, N = 9 (DropConnect draws a d x b mask per slot).
STORED_DRAWS = {
    "none": ([[1, 4], [5, 3], [0, 4], [4, 3], [1, 5]], "fffffffffffffff0"),
    "dropout": ([[1, 4], [5, 3], [0, 4], [4, 3], [1, 5]], "ffe57d5b71f6d7b0"),
    "dropblock": ([[1, 4], [5, 3], [0, 4], [4, 3], [1, 5]], "fff33c33c03c03f0"),
    "overlapping": ([[1, 4], [5, 3], [0, 4], [4, 3], [1, 5]], "001e23800fe3fc10"),
    "dropconnect": (
        [[1, 4], [5, 3], [0, 4], [4, 3], [1, 5]],
        "f7fbfffddb755ff3c7fffbfcdffbefdfffd75f58dede8ffbff7bafedff7f",
    ),
}


def _grid(rows: int, cols: int, p: int, q: int, m: int, shift: int, scale: float) -> np.ndarray:
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return (((p * i + q * j) % m) - shift) / scale


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a, b, N, d = 3, 4, 9, 6
    X = _grid(b, N, 7, 3, 11, 5, 8.0)
    Y = _grid(a, N, 5, 2, 7, 3, 4.0)
    U0 = _grid(a, d, 3, 1, 5, 2, 8.0)
    V0 = _grid(b, d, 2, 5, 7, 3, 8.0)
    return X, Y, U0, V0


def _fingerprint(run: sd.TrainResult) -> tuple[str, str, str]:
    digest = hashlib.sha256(run.U.tobytes() + run.V.tobytes()).hexdigest()[:16]
    return (
        digest,
        float(run.deterministic_objective[-1]).hex(),
        float(run.stochastic_objective[-1]).hex(),
    )


def _kernels():
    """Every kernel instruction set this CPU runs (the stored values hold for each)."""
    for isa in ("baseline", "avx2", "avx512"):
        try:
            _core.set_sgd_kernel_isa(isa)
        except ValueError:
            continue  # not on this CPU
        yield isa


@pytest.mark.parametrize("name", list(SCHEMES))
def test_seeded_runs_give_the_stored_values(name):
    X, Y, U0, V0 = _data()
    scheme = SCHEMES[name]
    try:
        for isa in _kernels():
            for batch_size in (1, 3):
                run = sd.train(
                    X, Y, U0, V0, scheme, lr=0.05, iterations=40, batch_size=batch_size,
                    record_every=10, seed=SEED,
                )  # fmt: skip
                assert _fingerprint(run) == STORED_RUNS[name, batch_size], (isa, batch_size)
            many = sd.train_many(
                X, Y, U0, V0, [scheme, scheme], lr=0.05, iterations=40, batch_size=[1, 3],
                record_every=10, seed=SEED, threads=2,
            )  # fmt: skip
            assert [_fingerprint(r) for r in many] == [
                STORED_RUNS[name, 1],
                STORED_RUNS[name, 3],
            ], isa
    finally:
        _core.set_sgd_kernel_isa("auto")


@pytest.mark.parametrize("name", list(SCHEMES))
def test_the_random_stream_gives_the_stored_draws(name):
    index, masks = _core.sgd_draws(SCHEMES[name]._core_params(), 6, 4, 9, SEED, 1, 5, 2)
    stored_index, stored_masks = STORED_DRAWS[name]
    assert index.tolist() == stored_index
    assert np.packbits(masks).tobytes().hex() == stored_masks


def test_the_stored_values_tell_the_schemes_apart():
    """A fingerprint that ignored the masks would pass the test above for every scheme."""
    assert len({v for v in STORED_RUNS.values()}) == len(STORED_RUNS)
    assert len({v[1] for v in STORED_DRAWS.values()}) == len(STORED_DRAWS)

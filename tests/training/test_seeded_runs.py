"""The same seed gives the same run, pinned by values stored from short seeded runs of each scheme.

The other reproducibility tests compare runs with each other (thread counts, kernels, train and
train_many, builds); they would all pass if every run changed in the same way. These values were
recorded once, so any change to the random stream's layout (which counter draws which sample or
mask bit) or to the order of the arithmetic in the loop shows up here. If such a change is meant,
record the new values with the code in this file and say so in CHANGELOG.md: users' seeds then
give different runs.

The data are small multiples of 1/8, so the data moments (computed by NumPy's BLAS, whose
summation order depends on the library and the CPU) are exact. U and V come from the SGD kernels,
whose arithmetic order the code fixes: their bytes, and the random draws, must match exactly on
every machine. The recorded objectives come from Eigen's products, whose kernels differ between
architectures (aarch64's NEON kernel fuses multiply-adds): they must lie within a rounding-error
bound of the stored values (see ``_objective_bound``), derived from the computation, not measured.
"""

import hashlib
import math

import numpy as np
import pytest

import structdrop as sd
from structdrop import _core

SEED = 2026

SCHEMES = {
    "none": sd.NoDropout(),
    "dropout": sd.Dropout(0.75),
    "dropblock": sd.DropBlock(2, theta=0.5),
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


def _max_scale(scheme: sd.MaskScheme, d: int) -> float:
    """The largest factor a kept unit (or DropConnect entry) is scaled by: 1 / its mean, with
    the kernel's own rounding (one IEEE division)."""
    return float(1.0 / np.min(scheme.mask_mean(d)))


def _objective_bound(scheme: sd.MaskScheme, run: sd.TrainResult) -> float:
    """How far two evaluations of the recorded objectives at the same U, V can lie apart.

    Each objective is a sum of monomials in the inputs (U, V, the exact moments, the scheme's
    constants), evaluated by sums and products in an order the BLAS-like kernel picks, with or
    without fused multiply-adds. In any such order a monomial goes through at most K roundings,
    each a factor (1 + delta) with |delta| <= u = 2^-53 (an FMA is one rounding where a product
    and a sum are two), so the computed value lies within gamma_K * F of the exact one, where
    gamma_K = K u / (1 - K u) and F is the sum of the monomials' magnitudes (Higham, Accuracy and
    Stability of Numerical Algorithms, 2nd ed., sec. 3.1 and Lemma 3.3). K counts the longest
    path (a, b, d: rows of U, rows of V, width):
      - an entry of W = U V^T, or of the masked product (one more rounding for the scaling):
        d + 1 (a product, d - 1 additions);
      - the fit ||Y||^2 - 2 <Y X^T, W> + <W X X^T, W>: two W entries, b for W X X^T, one
        product, a b - 1 additions, two final operations: 2 (d + 1) + b + a b + 2;
      - the regulariser: a column norm (a), a Gram product and its dot product (2 b), at most
        three products, a sum over at most d^2 pairs, one factor: a + 2 b + d^2 + 4;
      - the deterministic objective adds the two: one more.
    K is bounded by the sum of the fit's and the regulariser's counts plus one. F is the same
    formula with every input replaced by its magnitude and every minus by a plus, computed here
    by the library itself on the magnitudes (every term then adds, so its value is F to within
    gamma_K F; dividing by 1 - gamma_K covers that). The stochastic loss has the fit's form with
    U's columns (DropConnect: V's entries) scaled by at most ``_max_scale``, so its F is at most
    the fit's F at that scale times |U|. Both the stored value and this machine's value
    lie within gamma_K F of the exact objective: they differ by at most 2 gamma_K F.
    """
    X, Y, _, _ = _data()
    a, b, d = Y.shape[0], X.shape[0], run.U.shape[1]
    k = 2 * (d + 1) + b + a * b + 2 + a + 2 * b + d * d + 4 + 1
    u = 2.0**-53
    gamma = k * u / (1 - k * u)
    exact = sd.data_moments(X, Y)
    magnitudes = sd.DataMoments(
        gram=np.abs(exact.gram), cross=-np.abs(exact.cross), y_sq_norm=exact.y_sq_norm,
        n_samples=exact.n_samples,
    )  # fmt: skip
    U, V = np.abs(run.U), np.abs(run.V)
    deterministic = sd.objective_terms(scheme, U, V, magnitudes).objective
    stochastic = sd.objective_terms(sd.NoDropout(), _max_scale(scheme, d) * U, V, magnitudes).fit
    return 2 * gamma * max(deterministic, stochastic) / (1 - gamma)


def _assert_stored(scheme: sd.MaskScheme, run: sd.TrainResult, stored: tuple[str, ...], where):
    """U and V byte for byte; the objectives within the rounding bound of the stored values."""
    digest, deterministic, stochastic = _fingerprint(run)
    assert digest == stored[0], ("U and V differ from the stored run", where)
    bound = _objective_bound(scheme, run)
    for got, want in ((deterministic, stored[1]), (stochastic, stored[2])):
        assert math.isfinite(bound) and bound < 1e-9 * abs(float.fromhex(want))
        assert abs(float.fromhex(got) - float.fromhex(want)) <= bound, (got, want, bound, where)


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
                _assert_stored(scheme, run, STORED_RUNS[name, batch_size], (isa, batch_size))
            many = sd.train_many(
                X, Y, U0, V0, [scheme, scheme], lr=0.05, iterations=40, batch_size=[1, 3],
                record_every=10, seed=SEED, threads=2,
            )  # fmt: skip
            for run, batch_size in zip(many, (1, 3)):
                _assert_stored(scheme, run, STORED_RUNS[name, batch_size], (isa, "train_many"))
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


def test_the_objective_bound_tells_the_stored_runs_apart():
    """The objective check can fail: any two stored runs' objectives lie farther apart than the
    widest bound, so recording another step's or another scheme's objective is caught."""
    X, Y, U0, V0 = _data()
    widest = max(
        _objective_bound(scheme, sd.train(X, Y, U0, V0, scheme, lr=0.05, iterations=40, seed=SEED))
        for scheme in SCHEMES.values()
    )
    for column in (1, 2):
        values = sorted(float.fromhex(v[column]) for v in STORED_RUNS.values())
        assert min(np.diff(values)) > 1000 * widest

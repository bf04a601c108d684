"""The prox gives the same bits on every build and machine (docs/guarantees.md).

The selection's passes run on one lane-generic code path (cpp/ksupport_lanes.hpp: SSE2, the
vector extension on aarch64, a struct of two doubles in the ISO and MSVC builds) with every sum in
a fixed order, and the sorted sweep's reductions are fixed four-lane sums; neither contracts to
fused multiply-adds. So the results are pinned here as digests of their bytes, stored from a run of
the default x86-64 build: the portable build, other x86-64 CPUs and aarch64 must reproduce them.
(`.ci/same-bits.py` compares many more arrays between the default and the portable build.)

The inputs come from NumPy's PCG64 `random()` (53-bit dyadic values, the same on every platform)
through correctly rounded operations only (no libm), so they are the same everywhere too; a
change to how the prox rounds fails this test, and the stored digests must then be rewritten on
purpose (`python tests/ksupport/test_prox_bits.py` prints them).
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest

import structdrop as sd


def magnitudes(n: int, family: str) -> np.ndarray:
    u = np.random.default_rng(n).random(n)
    if family == "uniform":
        return u
    if family == "power law":  # 1/u: a heavy tail (P(m > t) = 1/t), by division only
        return 1.0 / (u + 2.0**-30)
    return u * u  # "square": many small magnitudes


def signs(n: int) -> np.ndarray:
    return np.where(np.random.default_rng(n + 1).integers(0, 2, n) == 1, 1.0, -1.0)


def digest(parts: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()[:16]


SIZES = (1001, 40001)  # odd: the selection takes units two at a time; 40001: several rounds
FAMILIES = ("uniform", "power law", "square")
KINDS = ("unsorted", "signed", "sorted", "float32")


def prox_digest(n: int, family: str, kind: str) -> str:
    m = magnitudes(n, family)
    x = {
        "unsorted": m,
        "signed": m * signs(n),
        "sorted": np.sort(m)[::-1].copy(),
        "float32": (m * signs(n)).astype(np.float32),
    }[kind]
    parts = []
    for r in (50, n // 20):
        for beta in (0.01, 1.0, 100.0):
            res = sd.prox_ksupport_sq(x, r, beta)
            parts += [res.values, np.array([res.objective, res.rho, res.rank], dtype=np.float64)]
    return digest(parts)


def batch_digest(dtype: type) -> str:
    M = (magnitudes(9 * 3001, "uniform") * signs(9 * 3001)).reshape(9, 3001).astype(dtype)
    res = sd.prox_ksupport_sq_batch(M, 150, 3.0, threads=2)
    return digest([res.values, res.objective, res.rho, res.rank])


STORED = {
    "uniform-1001-unsorted": "1a203b7038275d93",
    "uniform-1001-signed": "3af9dd089667544e",
    "uniform-1001-sorted": "f4aada69a8a56d13",
    "uniform-1001-float32": "fb49c405ff2ec068",
    "power law-1001-unsorted": "5675cb1aeee63375",
    "power law-1001-signed": "5ac984353de98bea",
    "power law-1001-sorted": "c06d2879744fff9c",
    "power law-1001-float32": "a3c8e92bd637bb61",
    "square-1001-unsorted": "b6bb011f5fb86230",
    "square-1001-signed": "fe5268247e74c352",
    "square-1001-sorted": "ad5a3d79e1536643",
    "square-1001-float32": "e29308e59a9df8f6",
    "uniform-40001-unsorted": "8689d213bc8c7c9e",
    "uniform-40001-signed": "81a0df29db1e57f1",
    "uniform-40001-sorted": "e6a8f7b9e886076f",
    "uniform-40001-float32": "dd453bc6cd4e251e",
    "power law-40001-unsorted": "5d11f66cd2932490",
    "power law-40001-signed": "c45818705049e922",
    "power law-40001-sorted": "9bb241639330ff97",
    "power law-40001-float32": "4a5c0435b924dc08",
    "square-40001-unsorted": "533a839f53f72f79",
    "square-40001-signed": "9baa4065ecd6eab1",
    "square-40001-sorted": "a552b17d980751dd",
    "square-40001-float32": "58cf8e639beadcc7",
    "batch-float64": "b6791ae7d339e352",
    "batch-float32": "6fb4661ed572d6c2",
    "inputs": "45653c21a9949bcb",
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("n", SIZES)
def test_prox_bits_are_the_stored_ones(n, family, kind):
    key = f"{family}-{n}-{kind}"
    assert prox_digest(n, family, kind) == STORED[key], key


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_bits_are_the_stored_ones(dtype):
    key = f"batch-{np.dtype(dtype).name}"
    assert batch_digest(dtype) == STORED[key], key


def test_inputs_are_platform_independent():
    """The digests presuppose the inputs: PCG64's stream and the rounding of 1/u, u*u."""
    assert digest([magnitudes(1001, f) for f in FAMILIES]) == STORED["inputs"]


def current() -> dict[str, str]:
    out = {
        f"{family}-{n}-{kind}": prox_digest(n, family, kind)
        for n in SIZES
        for family in FAMILIES
        for kind in KINDS
    }
    out.update({f"batch-{np.dtype(t).name}": batch_digest(t) for t in (np.float64, np.float32)})
    out["inputs"] = digest([magnitudes(1001, f) for f in FAMILIES])
    return out


if __name__ == "__main__":
    for key, value in current().items():
        print(f'    "{key}": "{value}",', file=sys.stdout)

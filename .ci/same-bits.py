"""Bit-for-bit comparison of two builds of structdrop: masked-SGD runs, the prox, the objectives.

The engine promises the same bits whatever the instruction set and whatever the compiler route:
the ISO C++ build (-Ccmake.define.STRUCTDROP_PORTABLE=ON, baseline kernels only) must reproduce
the default build's AVX-512, AVX2 and baseline kernels exactly. Each build writes its results to
.npy files in its own process (PYTHONPATH selects the build); `compare` then checks the files' raw
bytes. SGD: every scheme, per sample (batch 1: the fused loop) and minibatch (batch 3), through
train and train_many, on sizes with vector tails and masks of more than one 64-bit word. Prox: the
vector call (sorted, unsorted, signed, float32), the batch (float64 and float32) and the norm, for
several r and beta, on odd and even sizes (the selection takes two units at a time) large enough
for several selection rounds. Objectives: every scheme's exact objective and its terms.

    PYTHONPATH=site_a python .ci/same-bits.py write DIR_A
    PYTHONPATH=site_b python .ci/same-bits.py write DIR_B
    python .ci/same-bits.py compare DIR_A DIR_B
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def write(out: Path) -> None:
    import structdrop
    from structdrop import _core
    from structdrop.schemes import DropBlock, DropConnect, Dropout, NoDropout, OverlappingDropBlock

    out.mkdir(parents=True, exist_ok=True)
    schemes = {
        "none": NoDropout(),
        "dropout": Dropout(0.6),
        "dropblock": DropBlock(5, theta=0.5),
        "overlapping": OverlappingDropBlock(3, gamma=0.1),
        "dropconnect": DropConnect(0.7),
    }
    a, b, N, d = 9, 67, 50, 70  # b, d > 64: two-word masks; none a multiple of 4 or 8: tails
    rng = np.random.default_rng(2020)
    X, Y = rng.standard_normal((b, N)), rng.standard_normal((a, N))
    U0, V0 = 0.3 * rng.standard_normal((a, d)), 0.3 * rng.standard_normal((b, d))
    isas = []
    for isa in ("baseline", "avx2", "avx512"):
        try:
            _core.set_sgd_kernel_isa(isa)
        except ValueError:
            continue  # not on this CPU, or not in this build
        isas.append(isa)
        for batch in (1, 3):
            for name, scheme in schemes.items():
                run = structdrop.train(
                    X, Y, U0, V0, scheme, 1e-3, 300, batch_size=batch, record_every=100, seed=7
                )
                for field in ("U", "V", "stochastic_objective", "deterministic_objective"):
                    np.save(
                        out / f"{isa}-train-{name}-b{batch}-{field}.npy",
                        np.asarray(getattr(run, field)),
                    )
            runs = structdrop.train_many(
                X,
                Y,
                U0,
                V0,
                list(schemes.values()),
                1e-3,
                200,
                batch_size=batch,
                record_every=50,
                seed=[1, 2, 3, 4, 5],
                threads=2,
            )
            for name, run in zip(schemes, runs):
                for field in ("U", "V", "stochastic_objective", "deterministic_objective"):
                    np.save(
                        out / f"{isa}-many-{name}-b{batch}-{field}.npy",
                        np.asarray(getattr(run, field)),
                    )
    _core.set_sgd_kernel_isa("auto")
    write_prox(out)
    write_objectives(out, schemes)
    (out / "build.json").write_text(json.dumps({"module": structdrop.__file__, "isas": isas}))
    print(
        f"{structdrop.__file__}: kernels {', '.join(isas)}; {len(list(out.glob('*.npy')))} arrays "
        f"in {out}"
    )


def write_prox(out: Path) -> None:
    """The prox and the norm; files named "any-...": they do not depend on the SGD kernel."""
    import structdrop

    rng = np.random.default_rng(19)
    for n in (257, 1000, 4097, 30_001):  # odd and even; above and below the exact finish
        magnitudes = {
            "normal": rng.standard_normal(n),
            "uniform": rng.uniform(-1.0, 1.0, n),
            "exponential": rng.exponential(size=n) * rng.choice([-1.0, 1.0], n),
            "pareto": rng.pareto(1.5, n) * rng.choice([-1.0, 1.0], n),
        }
        for family, signed in magnitudes.items():
            m = np.abs(signed)
            inputs = {
                "signed": signed,
                "unsorted": m,
                "sorted": np.sort(m)[::-1].copy(),
                "float32": signed.astype(np.float32),
            }
            if n < 10_000:  # beyond 2^400 either way: rescaled by a power of two inside
                inputs["large"] = np.ldexp(signed, 420)
                inputs["tiny"] = np.ldexp(signed, -600)
            blocks = {50, n // 20} if n > 10_000 else {1, 50, n // 20, n // 2}
            for r in sorted(blocks):
                for beta in (0.01, 1.0, 100.0):
                    tag = f"{family}-n{n}-r{r}-b{beta:g}"
                    for kind, x in inputs.items():
                        res = structdrop.prox_ksupport_sq(x, r, beta)
                        np.save(out / f"any-prox-{kind}-{tag}-values.npy", res.values)
                        np.save(
                            out / f"any-prox-{kind}-{tag}-scalars.npy",
                            np.array([res.objective, res.rho, res.rank], dtype=np.float64),
                        )
            np.save(
                out / f"any-norm-{family}-n{n}.npy",
                np.array([structdrop.ksupport_norm_sq(signed, r) for r in (1, 7, n // 3)]),
            )
    for dtype in (np.float64, np.float32):  # rows of odd length, more rows than threads
        M = rng.standard_normal((9, 3001)).astype(dtype)
        for r, beta in ((5, 0.5), (150, 3.0)):
            res = structdrop.prox_ksupport_sq_batch(M, r, beta, threads=2)
            tag = f"{np.dtype(dtype).name}-r{r}-b{beta:g}"
            for field in ("values", "rho", "rank", "objective"):
                np.save(out / f"any-batch-{tag}-{field}.npy", np.asarray(getattr(res, field)))


def write_objectives(out: Path, schemes: dict) -> None:
    """Every scheme's exact objective and its terms, on shapes with vector tails."""
    from structdrop.schemes import DropBlock, OverlappingDropBlock

    rng = np.random.default_rng(23)
    shapes = {"small": (3, 5, 11, 10), "tails": (9, 67, 50, 70)}
    more = {
        "dropblock-r1": DropBlock(1, theta=0.5),
        "overlapping-wide": OverlappingDropBlock(9, gamma=0.3),
    }
    for label, (a, b, N, d) in shapes.items():
        X, Y = rng.standard_normal((b, N)), rng.standard_normal((a, N))
        U, V = rng.standard_normal((a, d)), rng.standard_normal((b, d))
        for name, scheme in {**schemes, **more}.items():
            terms = scheme.objective_terms(X, Y, U, V)
            values = [scheme.objective(X, Y, U, V), terms.fit, terms.regularizer]
            values.append(scheme.regularizer(U, V, X))
            np.save(out / f"any-objective-{name}-{label}.npy", np.array(values))


def compare(first: Path, second: Path) -> int:
    """Every array of `first` against the same run of `second`'s baseline kernels (and of the same
    instruction set where `second` has it), byte for byte."""
    isas_second = json.loads((second / "build.json").read_text())["isas"]
    files = sorted(first.glob("*.npy"))
    if not files:
        print(f"no arrays in {first}")
        return 1
    checked = differ = 0
    for path in files:
        isa, rest = path.name.split("-", 1)
        others = {"any"} if isa == "any" else {"baseline", isa} & set(isas_second)
        for other_isa in others:
            other = second / f"{other_isa}-{rest}"
            checked += 1
            if not other.exists() or path.read_bytes() != other.read_bytes():
                differ += 1
                print(f"DIFFERENT: {path.name} vs {other}")
    print(f"{checked} comparisons, {differ} different ({first} vs {second})")
    return 1 if differ else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)

"""Bit-for-bit comparison of masked-SGD runs between two builds of structdrop.

The engine promises the same bits whatever the instruction set and whatever the compiler route:
the ISO C++ build (-Ccmake.define.STRUCTDROP_PORTABLE=ON, baseline kernels only) must reproduce
the default build's AVX-512, AVX2 and baseline kernels exactly. Each build writes its runs to .npy
files in its own process (PYTHONPATH selects the build); `compare` then checks the files' raw
bytes. Every scheme, per sample (batch 1: the fused loop) and minibatch (batch 3), through train
and train_many, on sizes with vector tails and masks of more than one 64-bit word.

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
        "dropblock": DropBlock(0.5, 5),
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
    (out / "build.json").write_text(json.dumps({"module": structdrop.__file__, "isas": isas}))
    print(
        f"{structdrop.__file__}: kernels {', '.join(isas)}; {len(list(out.glob('*.npy')))} arrays "
        f"in {out}"
    )


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
        for other_isa in {"baseline", isa} & set(isas_second):
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

"""`structdrop sweep`: phase diagrams over (block size, theta_bar) and widths."""

from __future__ import annotations

import json

import numpy as np
import pytest

import structdrop as sd
from structdrop.cli import main

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_sweep_on_files_matches_the_single_solver(tmp_path, capsys):
    rng = np.random.default_rng(5)
    Y = rng.standard_normal((6, 20))
    X = rng.standard_normal((4, 2)) @ rng.standard_normal((2, 20))
    np.save(tmp_path / "Y.npy", Y)
    np.save(tmp_path / "X.npy", X)
    out = tmp_path / "out"
    code = main(
        [
            "sweep",
            str(tmp_path / "Y.npy"),
            "--X",
            str(tmp_path / "X.npy"),
            "--block-sizes",
            "1:4",
            "--theta-bars",
            "0.1:0.9:5",
            "--widths",
            "5,50,500",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out == ""  # --quiet
    data = json.loads((out / "sweep.json").read_text())
    for key in (
        "block_sizes",
        "theta_bars",
        "objective",
        "rank",
        "rho",
        "residual",
        "width_sweep",
        "y_norm_sq",
    ):
        assert key in data
    assert data["block_sizes"] == [1, 2, 3, 4]
    np.testing.assert_allclose(data["theta_bars"], np.linspace(0.1, 0.9, 5))
    for i, r in enumerate(data["block_sizes"]):
        for j, theta_bar in enumerate(data["theta_bars"]):
            single = sd.dropblock_global_min(Y, block_size=r, theta_bar=theta_bar, X=X)
            assert data["objective"][i][j] == pytest.approx(single.objective, rel=1e-11)
            assert data["rank"][i][j] == single.rank
    widths = data["width_sweep"]
    for d, value in zip(widths["widths"], widths["fixed_objective"]):
        theta_bar = 1 / (1 + sd.beta_for_width(0.5, d, 5))
        assert value == pytest.approx(
            sd.dropblock_global_min(Y, block_size=5, theta_bar=theta_bar, X=X).objective, rel=1e-10
        )
    for name in ("rank_phase.png", "objective_phase.png", "width_sweep.png"):
        content = (out / name).read_bytes()
        assert content.startswith(PNG_SIGNATURE) and len(content) > 5000


def test_sweep_builtin_example_prints_a_summary(tmp_path, capsys):
    assert (
        main(["sweep", "--block-sizes", "1,5,10", "--theta-bars", "0.5", "--out", str(tmp_path)])
        == 0
    )
    text = capsys.readouterr().out
    assert "3 settings" in text and "wrote" in text
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["x_shape"] == [100, 1000] and np.shape(data["objective"]) == (3, 1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--block-sizes", "0:4"], "integers must be >= 1"),
        (["--block-sizes", "5:2"], "expected START:STOP"),
        (["--block-sizes", "a"], "expected START:STOP"),
        (["--theta-bars", "0:1:5"], r"theta_bar values must lie in \(0, 1\]"),
        (["--theta-bars", "0.1:0.9"], "expected START:STOP:COUNT"),
        (["--widths", "7,12"], "block_size must divide the width d"),
        (["--width-theta-bar", "2"], "probability"),
    ],
)
def test_bad_ranges_exit_2_with_one_line(tmp_path, capsys, args, message):
    code = main(["sweep", "--out", str(tmp_path), *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    import re

    assert re.search(message, err[0])


def test_missing_file_exit_2(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope.npy"), "--out", str(tmp_path)]) == 2
    assert "nope.npy" in capsys.readouterr().err

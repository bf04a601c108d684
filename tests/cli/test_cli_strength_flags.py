"""The 1.0 option names of `structdrop solve` and `structdrop sweep`: --block-size, and the
strength as exactly one of --theta-bar / --beta (solve; --theta with --width for a network's
theta) and --theta-bars / --betas, --width-theta-bar / --width-beta (sweep). The old flags (-r,
--theta alone, sweep's --theta and --width-theta) still work, with one line on stderr."""

from __future__ import annotations

import json

import numpy as np
import pytest

import structdrop as sd
from structdrop.cli import main


@pytest.fixture
def y_file(tmp_path):
    Y = np.random.default_rng(3).standard_normal((4, 12))
    np.save(tmp_path / "Y.npy", Y)
    return tmp_path / "Y.npy", Y


def _solve(capsys, path, *flags):
    code = main(["solve", str(path), *flags, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out), captured.err


def test_theta_bar_beta_and_theta_with_width_agree_with_the_library(capsys, y_file):
    path, Y = y_file
    want = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.6)
    by_theta_bar, err = _solve(capsys, path, "--block-size", "2", "--theta-bar", "0.6")
    assert err == "" and by_theta_bar["objective"] == want.objective
    by_beta, err = _solve(capsys, path, "--block-size", "2", "--beta", repr(want.beta))
    assert err == "" and by_beta["objective"] == want.objective
    assert by_beta["theta_bar"] == pytest.approx(0.6, rel=1e-15)
    beta = sd.beta_for_width(0.5, 8, 2)
    at_width, err = _solve(capsys, path, "--block-size", "2", "--theta", "0.5", "--width", "8")
    assert err == ""
    assert at_width["objective"] == sd.dropblock_global_min(Y, block_size=2, beta=beta).objective


def test_old_solve_flags_still_work_with_a_note_on_stderr(capsys, y_file):
    path, _ = y_file
    new, _ = _solve(capsys, path, "--block-size", "2", "--theta-bar", "0.6")
    old, err = _solve(capsys, path, "-r", "2", "--theta", "0.6")
    assert old == new
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert "-r is deprecated" in lines[0] and "--block-size" in lines[0]
    assert "--theta without --width is deprecated" in lines[1] and "--theta-bar" in lines[1]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--block-size", "2"], "one of --theta-bar, --beta, or --theta with --width"),
        (["--block-size", "2", "--theta-bar", "0.5", "--beta", "1"], "not allowed with"),
        (["--block-size", "2", "--theta", "0.5", "--beta", "1"], "not allowed with"),
        (["--block-size", "2", "--beta", "-1"], "expected a finite number >= 0"),
        (["--block-size", "2", "--beta", "inf"], "expected a finite number >= 0"),
        (["--block-size", "2", "--theta-bar", "0.5", "--width", "8"], "--width needs --theta"),
        (["--beta", "1"], "block size is required"),
    ],
)
def test_bad_strength_flags_exit_2_with_one_line(capsys, y_file, flags, message):
    path, _ = y_file
    assert main(["solve", str(path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def _sweep(capsys, out, *flags):
    pytest.importorskip("matplotlib")
    code = main(["sweep", *flags, "--widths", "2,4", "--width-block-size", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads((out / "sweep.json").read_text()), captured.err


def test_sweep_flags_new_and_old(capsys, tmp_path, y_file):
    path, Y = y_file
    base = [str(path), "--block-sizes", "1,2", "--quiet"]
    new, err = _sweep(
        capsys, tmp_path / "a", *base, "--theta-bars", "0.5,0.8", "--width-theta-bar", "0.6"
    )
    assert err == ""
    by_beta, err = _sweep(
        capsys, tmp_path / "b", *base, "--betas", "1,0.25", "--width-beta", repr((1 - 0.6) / 0.6)
    )
    assert err == ""
    np.testing.assert_allclose(by_beta["objective"], new["objective"], rtol=1e-14)
    np.testing.assert_allclose(
        by_beta["width_sweep"]["fixed_objective"], new["width_sweep"]["fixed_objective"], rtol=1e-14
    )
    grid = sd.sweep_global_min(Y, block_sizes=[1, 2], theta_bars=[0.5, 0.8])
    assert new["objective"] == grid.objective.tolist()
    old, err = _sweep(capsys, tmp_path / "c", *base, "--theta", "0.5,0.8", "--width-theta", "0.6")
    assert old["objective"] == new["objective"]
    assert old["width_sweep"] == new["width_sweep"]
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "--theta-bars" in lines[0] and "--width-theta-bar" in lines[1]
    assert main(["sweep", *base, "--theta-bars", "0.5", "--betas", "1"]) == 2
    assert "not allowed with" in capsys.readouterr().err

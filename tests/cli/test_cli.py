"""The command line: `structdrop solve` on every input format, help, demo, and user errors
(exit 2)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

import structdrop
from structdrop.cli import main


def user_lines(stderr: str) -> list[str]:
    """stderr without the lines an editable install's automatic rebuild may print (dev installs
    only)."""
    noise = ("Running cmake", "[0/", "[1/", "[2/", "ninja:", "-- ")
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(noise)]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m structdrop ARGS` in a fresh interpreter (end to end, like a user)."""
    return subprocess.run(
        [sys.executable, "-m", "structdrop", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 20))
    Y = rng.standard_normal((4, 6)) @ X + 0.1 * rng.standard_normal((4, 20))
    return X, Y


@pytest.fixture(scope="module")
def files(problem, tmp_path_factory):
    X, Y = problem
    folder = tmp_path_factory.mktemp("inputs")
    np.save(folder / "Y.npy", Y)
    np.save(folder / "X.npy", X)
    np.savez(folder / "data.npz", first=Y, X=X)
    with open(folder / "Y.csv", "w") as handle:  # header line, comments, full precision
        handle.write("# targets\n" + ",".join(f"c{i}" for i in range(Y.shape[1])) + "\n")
        for row in Y:
            handle.write(",".join(repr(float(v)) for v in row) + "\n")
    return folder


def solve_json(capsys, *args: str) -> dict:
    code = main(["solve", *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.parametrize(
    "name,extra", [("Y.npy", []), ("Y.csv", []), ("data.npz", []), ("data.npz", ["--key", "first"])]
)
def test_solve_each_format_matches_the_library(capsys, files, problem, name, extra):
    X, Y = problem
    got = solve_json(capsys, str(files / name), *extra, "--block-size", "2", "--theta-bar", "0.6")
    want = structdrop.dropblock_global_min(Y, block_size=2, theta_bar=0.6)
    assert got["rho"] == want.rho and got["rank"] == want.rank
    assert got["objective"] == pytest.approx(want.objective, rel=1e-12)
    np.testing.assert_allclose(got["singular_values"], want.singular_values, rtol=1e-12, atol=1e-12)
    assert got["beta_bar"] == pytest.approx(0.4 / 0.6)


def test_solve_with_X_width_and_out(capsys, files, problem, tmp_path):
    """With X, --out writes the coefficients C (a x b) and --out-A the minimiser A* = C X
    (a x N)."""
    X, Y = problem
    out = tmp_path / "A.npy"
    coefficients = tmp_path / "C.npy"
    got = solve_json(
        capsys,
        str(files / "Y.npy"),
        "--X",
        str(files / "data.npz"),
        "--X-key",
        "X",
        "--block-size",
        "2",
        "--theta",
        "0.5",
        "--width",
        "8",
        "--method",
        "search",
        "--out",
        str(coefficients),
        "--out-A",
        str(out),
    )
    theta_bar = 1.0 / (1.0 + (2 / 8) * (1 - 0.5) / 0.5)  # eq. 7 by hand
    assert got["theta_bar"] == pytest.approx(theta_bar, rel=1e-14)
    want = structdrop.dropblock_global_min(
        Y, block_size=2, theta_bar=theta_bar, X=X, method="search"
    )
    assert got["objective"] == pytest.approx(want.objective, rel=1e-12)
    assert got["residual"] == pytest.approx(want.residual, abs=1e-9)
    np.testing.assert_allclose(np.load(out), want.A, rtol=1e-10, atol=1e-10)
    assert np.load(coefficients).shape == (Y.shape[0], X.shape[0])
    np.testing.assert_allclose(np.load(coefficients) @ X, want.A, rtol=1e-10, atol=1e-10)
    # F(A*) recomputed from the saved A* with the library's k-support norm
    A = np.load(out)
    sigma = np.linalg.svd(A, compute_uv=False)
    beta = (1 - theta_bar) / theta_bar
    F = np.sum((Y - A) ** 2) + beta * structdrop.ksupport_norm_sq(sigma, 2)
    assert F == pytest.approx(got["objective"], rel=1e-9)


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_solve_out_other_formats(capsys, files, problem, tmp_path, suffix):
    _, Y = problem
    out = tmp_path / f"A{suffix}"
    solve_json(
        capsys, str(files / "Y.npy"), "--block-size", "1", "--theta-bar", "0.7", "--out", str(out)
    )
    A = np.loadtxt(out, delimiter=",") if suffix == ".csv" else np.load(out)["A"]
    np.testing.assert_allclose(
        A, structdrop.dropblock_global_min(Y, block_size=1, theta_bar=0.7).A, rtol=1e-12, atol=1e-12
    )


def test_solve_end_to_end_text_output(files):
    result = run_cli(
        "solve", str(files / "Y.npy"), "--block-size", "2", "--theta-bar", "0.5", "--top", "3"
    )
    assert result.returncode == 0, result.stderr
    for word in ("rho", "rank", "objective", "singular values of A*"):
        assert word in result.stdout
    assert user_lines(result.stderr) == []


BAD = [
    (["solve", "{d}/missing.npy", "--block-size", "2", "--theta-bar", "0.5"], "no such file"),
    (["solve", "{d}/Y.txt", "--block-size", "2", "--theta-bar", "0.5"], "unsupported file type"),
    (["solve", "{d}/corrupt.npy", "--block-size", "2", "--theta-bar", "0.5"], "cannot read"),
    (
        ["solve", "{d}/bad.csv", "--block-size", "2", "--theta-bar", "0.5"],
        "not comma-separated numbers",
    ),
    (
        ["solve", "{d}/ragged.csv", "--block-size", "2", "--theta-bar", "0.5"],
        "different numbers of columns",
    ),
    (["solve", "{d}/vector.npy", "--block-size", "2", "--theta-bar", "0.5"], "2-D"),
    (["solve", "{d}/nan.npy", "--block-size", "2", "--theta-bar", "0.5"], "NaN"),
    (["solve", "{d}/Y.npy", "--block-size", "2", "--theta-bar", "1.5"], "probability"),
    (["solve", "{d}/Y.npy", "--block-size", "0", "--theta-bar", "0.5"], "positive integer"),
    (["solve", "{d}/Y.npy", "--theta-bar", "0.5"], "required"),
    (["solve", "{d}/Y.npy", "--block-size", "3", "--theta", "0.5", "--width", "8"], "divide"),
    (
        ["solve", "{d}/Y.npy", "--block-size", "2", "--theta-bar", "0.5", "--X", "{d}/Xwrong.npy"],
        "same number of samples",
    ),
    (
        ["solve", "{d}/data.npz", "--key", "nope", "--block-size", "2", "--theta-bar", "0.5"],
        "no array named 'nope'",
    ),
    (
        ["solve", "{d}/Y.npy", "--key", "Y", "--block-size", "2", "--theta-bar", "0.5"],
        "only applies to .npz",
    ),
    (
        ["solve", "{d}/Y.npy", "--block-size", "2", "--theta-bar", "0.5", "--out", "{d}/A.txt"],
        "unsupported file type",
    ),
    (
        [
            "solve",
            "{d}/Y.npy",
            "--block-size",
            "2",
            "--theta-bar",
            "0.5",
            "--out",
            "{d}/no/such/dir/A.npy",
        ],
        "cannot write",
    ),
    (
        ["solve", "{d}/Y.npy", "--block-size", "2", "--theta-bar", "0.5", "--method", "fast"],
        "invalid choice",
    ),
    (["nosuchcommand"], "invalid choice"),
    (["reproduce", "fig9"], "invalid choice"),
    (["reproduce", "fig1", "--iterations", "0"], "positive integer"),
    (["reproduce", "fig1", "--lr", "-1"], "positive"),
    (["reproduce", "fig3", "--dataset", "mnist"], "--data-root"),
    (
        ["reproduce", "fig1", "--device", "cpu", "--iterations", "1", "--out", "{d}/figs"],
        "--device applies to Figure 3",
    ),
    (
        ["reproduce", "fig2", "--device", "cuda", "--iterations", "1", "--out", "{d}/figs"],
        "--device applies to Figure 3",
    ),
    (
        ["reproduce", "fig4", "--device", "cuda:0", "--iterations", "1", "--out", "{d}/figs"],
        "--device applies to Figure 3",
    ),
    pytest.param(
        ["reproduce", "fig3", "--device", "nosuchdevice", "--out", "{d}/figs"],
        "--device",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("torch") is None, reason="PyTorch judges the device"
        ),
    ),
]


def test_reproduce_refuses_a_device_this_torch_cannot_use(capsys, tmp_path):
    """A device PyTorch cannot allocate on is one line, exit 2, before anything is written
    (a CPU-only torch asked for CUDA raised an AssertionError traceback)."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: pick a device index beyond the last one")
    code = main(["reproduce", "fig3", "--quick", "--device", "cuda", "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--device cuda is not available" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "f").exists()


@pytest.fixture(scope="module")
def bad_files(files):
    np.save(files / "vector.npy", np.arange(5.0))
    np.save(files / "nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    np.save(files / "Xwrong.npy", np.ones((3, 7)))
    (files / "corrupt.npy").write_bytes(b"this is not a numpy file")
    (files / "bad.csv").write_text("1,2\n3,abc\n")
    (files / "ragged.csv").write_text("1,2,3\n4,5\n")
    (files / "Y.txt").write_text("1 2\n")
    return files


def _case_id(case) -> str:
    args, message = case.values if hasattr(case, "values") else case
    return " ".join(args[:1] + [message])


@pytest.mark.parametrize("args,message", BAD, ids=[_case_id(case) for case in BAD])
def test_user_errors_exit_2_with_one_line(capsys, bad_files, args, message):
    argv = [a.format(d=bad_files) for a in args]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_user_error_end_to_end_has_no_traceback(bad_files):
    result = run_cli(
        "solve", str(bad_files / "corrupt.npy"), "--block-size", "2", "--theta-bar", "0.5"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = user_lines(result.stderr)
    assert len(lines) == 1 and "corrupt.npy" in lines[0], result.stderr


@pytest.mark.parametrize(
    "args", [["--help"], ["solve", "--help"], ["reproduce", "--help"], ["demo", "--help"]]
)
def test_help_everywhere(capsys, args):
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "usage:" in out


def test_console_script():
    import os
    import shutil

    script = shutil.which("structdrop", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the structdrop console script is not installed next to this interpreter")
    result = subprocess.run([script, "solve", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--block-size" in result.stdout


def test_command_line_imports_stay_light():
    code = (
        "import sys, structdrop, structdrop.cli\n"
        "print(sorted(m for m in ('matplotlib', 'torch', 'scipy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_version(capsys):
    assert main(["--version"]) == 0
    assert structdrop.__version__ in capsys.readouterr().out


def test_no_arguments_runs_the_demonstration():
    result = run_cli()
    assert result.returncode == 0, result.stderr
    assert "structdrop demo" in result.stdout
    assert "structdrop reproduce" in result.stdout  # says where to go next
    # the demo's numbers are the library's: the r = 5 row shows the Theorem 7 minimum
    p = structdrop.paper_synthetic(seed=0)
    res = structdrop.dropblock_global_min(p.Y, block_size=5, theta_bar=0.5, X=p.X)
    assert f"{res.objective:.6g}" in result.stdout

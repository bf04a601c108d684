"""`structdrop reproduce all --quick` end to end: PNGs, JSON with the documented keys, summary.md.

The reproduction runs once per test session (module-scoped fixture, about 20-30 s on two cores);
every test checks its artefacts. Needs matplotlib (skipped without it); Figure 3 needs torch.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import structdrop  # noqa: E402

HAS_TORCH = (
    importlib.util.find_spec("torch") is not None
    and importlib.util.find_spec("sklearn") is not None
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The keys each module docstring documents (structdrop/figures/figN.py), written out independently.
DOCUMENTED = {
    "fig1": {"figure", "title", "settings", "iterations", "runs", "claims", "seconds"},
    "fig2": {
        "figure",
        "title",
        "settings",
        "iterations",
        "dropconnect",
        "dropout",
        "checkpoints",
        "dropconnect_exact_at_checkpoints",
        "dropconnect_printed_at_checkpoints",
        "final",
        "stochastic_over_deterministic",
        "stochastic_over_deterministic_se",
        "claims",
        "seconds",
    },
    "fig3": {
        "figure",
        "title",
        "settings",
        "epochs",
        "objective",
        "train_loss",
        "lower_bound",
        "final_ratio",
        "singular_values",
        "theory_singular_values",
        "theory_rank",
        "rank_measured",
        "top_relative_error",
        "claims",
        "seconds",
    },
    "fig4": {
        "figure",
        "title",
        "settings",
        "iterations",
        "runs",
        "checkpoints",
        "corrected_exact_at_checkpoints",
        "corrected_approx_at_checkpoints",
        "same_theta_diverged_at",
        "final",
        "stochastic_over_deterministic",
        "stochastic_over_deterministic_se",
        "claims",
        "seconds",
    },
}
FIG1_RUN_KEYS = {
    "block_size",
    "stochastic",
    "deterministic",
    "global_min",
    "rho",
    "rank",
    "beta_bar",
    "final_ratio",
    "min_ratio",
    "stochastic_over_deterministic",
    "stochastic_over_deterministic_se",
    "enumerated_final",
    "enumeration_rel_error",
}
FIG2_FINAL_KEYS = {
    "exact",
    "printed",
    "fit",
    "mc_mean",
    "mc_se",
    "mc_masks",
    "gap_measured",
    "gap_predicted",
    "dropout_deterministic",
    "dropconnect_deterministic",
}
FIG4_RUN_KEYS = {"stochastic", "deterministic", "mean_keep", "interior_keep"}
CLAIM_KEYS = {"figure", "claim", "measured", "verdict"}


def figures_made() -> list[str]:
    return ["fig1", "fig2", "fig4"] + (["fig3"] if HAS_TORCH else [])


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "structdrop",
            "reproduce",
            "all",
            "--quick",
            "--out",
            str(out),
            "--seed",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def load(out, name) -> dict:
    return json.loads((out / f"{name}.json").read_text())


@pytest.mark.slow
def test_every_figure_is_a_readable_png(reproduced):
    import matplotlib.image as mpimg

    out, _ = reproduced
    for name in figures_made():
        width, height = png_size(out / f"{name}.png")
        assert 500 <= width <= 2500 and 300 <= height <= 2500, (name, width, height)
        image = mpimg.imread(out / f"{name}.png")
        assert image.shape[:2] == (height, width)
        assert image.std() > 0.05  # not blank


@pytest.mark.slow
def test_json_has_the_documented_keys(reproduced):
    out, _ = reproduced
    for name in figures_made():
        data = load(out, name)
        assert set(data) == DOCUMENTED[name], (name, set(data) ^ DOCUMENTED[name])
        assert data["figure"] == name
        assert data["claims"] and all(set(c) == CLAIM_KEYS for c in data["claims"])
    for run in load(out, "fig1")["runs"]:
        assert set(run) == FIG1_RUN_KEYS
    assert set(load(out, "fig2")["final"]) == FIG2_FINAL_KEYS
    assert all(set(r) == FIG4_RUN_KEYS for r in load(out, "fig4")["runs"].values())


@pytest.mark.slow
def test_summary_states_every_claim(reproduced):
    out, result = reproduced
    summary = (out / "summary.md").read_text()
    for name in figures_made():
        assert f"## {name}:" in summary and f"]({name}.png)" in summary
        for claim in load(out, name)["claims"]:
            assert claim["measured"].replace("|", "\\|") in summary
    if not HAS_TORCH:
        assert "fig3 skipped" in summary
    assert "wrote" in result.stdout and "summary.md" in result.stdout


@pytest.mark.slow
def test_fig1_numbers_against_the_theory(reproduced):
    """The global minimum in the JSON is the corrected Theorem 7 value, and training never goes
    below it."""
    out, _ = reproduced
    data = load(out, "fig1")
    s = data["settings"]
    assert (s["a"], s["b"], s["N"], s["d"], s["theta"]) == (80, 100, 1000, 50, 0.5)
    problem = structdrop.paper_synthetic(seed=0)
    for run in data["runs"]:
        r = run["block_size"]
        beta_bar = (r / 50) * (1 - 0.5) / 0.5  # eq. 7 by hand
        gm = structdrop.dropblock_global_min(
            problem.Y, block_size=r, theta_bar=1 / (1 + beta_bar), X=problem.X
        )
        assert run["global_min"] == pytest.approx(gm.objective, rel=1e-10)
        det = np.asarray(run["deterministic"])
        assert det.min() >= gm.objective * (1 - 1e-9)  # Theorem 7 is a lower bound
        assert det[-1] < 0.2 * det[0]  # training made progress
        assert len(run["stochastic"]) == len(det) == len(data["iterations"])
        # the enumeration over all masks agrees with the engine's Lemma 1 value at the final weights
        assert run["enumerated_final"] == pytest.approx(det[-1], rel=1e-9)


@pytest.mark.slow
def test_fig2_gap_measured_matches_the_corrected_identity(reproduced):
    out, _ = reproduced
    f = load(out, "fig2")["final"]
    # Monte Carlo mean agrees with the corrected identity and not with the printed (22)
    assert abs(f["mc_mean"] - f["exact"]) < 5 * f["mc_se"]
    assert abs(f["mc_mean"] - f["printed"]) > 5 * f["mc_se"]
    assert f["exact"] >= f["fit"] and f["printed"] >= f["fit"]


@pytest.mark.slow
def test_fig4_keep_probabilities(reproduced):
    out, _ = reproduced
    data = load(out, "fig4")
    s, runs = data["settings"], data["runs"]
    assert (1 - s["gamma_corrected"]) ** 5 == pytest.approx(0.5)
    assert runs["overlapping_corrected"]["interior_keep"] == pytest.approx(0.5)
    assert runs["overlapping_same_theta"]["interior_keep"] == pytest.approx(0.5**5)
    # mean keep over d = 50 units with 46 seeds, counted by hand: |W(i)| = min(i + 1, 5, 50 - i, 46)
    covering = np.array([min(i + 1, 5, 50 - i, 46) for i in range(50)])
    assert runs["overlapping_corrected"]["mean_keep"] == pytest.approx(
        np.mean((1 - s["gamma_corrected"]) ** covering)
    )


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="Figure 3 needs torch and scikit-learn")
def test_fig3_bound_and_singular_values(reproduced):
    out, _ = reproduced
    data = load(out, "fig3")
    assert len(data["objective"]) == data["settings"]["epochs"] + 1
    assert min(data["objective"]) >= data["lower_bound"] * (1 - 1e-9)
    assert len(data["singular_values"]) == len(data["theory_singular_values"]) == 10


def run_module(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )


def test_missing_matplotlib_is_one_line_exit_2(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from structdrop.cli import main\n"
        f"sys.exit(main(['reproduce', 'fig1', '--quick', '--out', r'{tmp_path}', '--quiet']))"
    )
    result = run_module(code)
    assert result.returncode == 2
    assert "pip install 'structdrop[plot]'" in result.stderr and "Traceback" not in result.stderr


def test_missing_torch_fig3_is_one_line_exit_2(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from structdrop.cli import main\n"
        f"sys.exit(main(['reproduce', 'fig3', '--quick', '--out', r'{tmp_path}', '--quiet']))"
    )
    result = run_module(code)
    assert result.returncode == 2
    assert "structdrop[torch]" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "fig3.png").exists()


@pytest.mark.slow
def test_all_without_torch_skips_fig3_with_a_note(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from structdrop.cli import main\n"
        "sys.exit(main(['reproduce', 'all', '--iterations', '200',"
        f" '--out', r'{tmp_path}', '--quiet']))"
    )
    result = run_module(code, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (tmp_path / "fig3.png").exists()
    assert all((tmp_path / f"{name}.png").exists() for name in ("fig1", "fig2", "fig4"))
    assert "fig3 skipped" in (tmp_path / "summary.md").read_text()


def test_quiet_silences_progress_same_seed_same_numbers(tmp_path, capsys):
    from structdrop.cli import main

    args = ["reproduce", "fig1", "--iterations", "400", "--seed", "5", "--out"]
    assert main(args + [str(tmp_path / "quiet"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""
    assert main(args + [str(tmp_path / "loud")]) == 0
    loud = capsys.readouterr()
    assert "fig1" in loud.err and "400/400" in loud.err.replace(".0", "")  # the tqdm bar
    a, b = load(tmp_path / "quiet", "fig1"), load(tmp_path / "loud", "fig1")
    assert a["runs"][0]["deterministic"] == b["runs"][0]["deterministic"]
    assert a["runs"][1]["stochastic"] == b["runs"][1]["stochastic"]
    assert a["iterations"][-1] == 400


def test_missing_dependency_is_one_class_for_figures_and_cli():
    from structdrop.cli import _common
    from structdrop.figures import MissingDependency

    assert _common.MissingDependency is MissingDependency


def test_sweep_without_matplotlib_is_one_line_exit_2(tmp_path):
    # The plots of `structdrop sweep` raise the figures' MissingDependency; the command line
    # prints it as one line (no translation layer in between).
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from structdrop.cli import main\n"
        "sys.exit(main(['sweep', '--block-sizes', '1,5', '--theta', '0.5', '--out',"
        f" r'{tmp_path}']))"
    )
    result = run_module(code)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "pip install 'structdrop[plot]'" in result.stderr and "Traceback" not in result.stderr

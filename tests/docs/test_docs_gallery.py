"""The gallery's scripts (docs/gallery/plot_*.py) run and draw a figure.

The documentation build runs them too (sphinx-gallery); this runs them without Sphinx, each in a
fresh process with the off-screen backend, so that a broken example shows up in the test suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

GALLERY = Path(__file__).resolve().parents[2] / "docs" / "gallery"
SCRIPTS = sorted(GALLERY.glob("plot_*.py"))

# Run the script, then report how many figures it left open (sphinx-gallery captures those).
RUNNER = """
import runpy, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.show = lambda *args, **kwargs: None
runpy.run_path(sys.argv[1], run_name="__main__")
print("FIGURES", len(plt.get_fignums()))
"""


def test_the_gallery_has_the_three_examples():
    names = {path.stem for path in SCRIPTS}
    assert {"plot_phase_diagram", "plot_training_curves", "plot_mask_statistics"} <= names
    for path in SCRIPTS:
        text = path.read_text()
        assert text.startswith('"""\n'), f"{path.name}: sphinx-gallery needs a docstring first"
        title, rule = text.splitlines()[1:3]
        assert title and set(rule) == {"="} and len(rule) >= len(title)


@pytest.mark.slow
@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.stem)
def test_example_runs_and_draws(path, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = int(done.stdout.rsplit("FIGURES", 1)[1])
    assert figures >= 1

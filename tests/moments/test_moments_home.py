"""DataMoments and data_moments have one home, structdrop.moments; structdrop.objectives keeps
re-exporting the very same objects for code written against 0.x."""

from __future__ import annotations

import ast
import pathlib

import structdrop as sd
from structdrop import moments, objectives


def test_data_moments_has_one_home_and_objectives_reexports_the_same_objects():
    assert sd.DataMoments.__module__ == "structdrop.moments"
    # 0.x code imports them from structdrop.objectives: the very same objects
    assert objectives.DataMoments is moments.DataMoments is sd.DataMoments
    assert objectives.data_moments is moments.data_moments
    assert "DataMoments" in (objectives.__doc__ or "")
    # inside the package every import comes from the home module
    package = pathlib.Path(sd.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("objectives"):
                names = {alias.name for alias in node.names}
                if names & {"DataMoments", "data_moments"}:
                    offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert offenders == []

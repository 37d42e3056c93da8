"""The notebooks as committed: outputs stripped, a parameters cell, no pipeline code in cells.
(`make notebooks`, run by CI, executes them.)"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.ipynb"))


def test_there_are_three_notebooks():
    assert [p.stem for p in NOTEBOOKS] == [
        "01_explore_leads",
        "02_retrain_and_compare",
        "03_points_ledger",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_parameterised_and_calls_the_library(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), "strip outputs"
    assert sum("parameters" in c["metadata"].get("tags", []) for c in code) == 1
    source = "\n".join("".join(c["source"]) for c in code)
    assert "from leadml import" in source
    # pipeline logic lives in the package: cells define no functions or classes and run no loops
    python = "\n".join(line for line in source.splitlines() if not line.startswith("%"))
    nodes = {type(n).__name__ for n in ast.walk(ast.parse(python))}
    assert not nodes & {"FunctionDef", "AsyncFunctionDef", "ClassDef", "For", "While"}, nodes

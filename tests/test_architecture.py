"""docs/architecture.md and the README's Architecture section name the modules that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    p.stem for p in (ROOT / "src" / "leadml").glob("*.py") if not p.stem.startswith("__")
)


def _named(text: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+)(?:\.[A-Za-z_]+)?`", text))


def test_every_module_has_its_paragraph_in_docs_architecture():
    named = _named((ROOT / "docs" / "architecture.md").read_text())
    assert [m for m in MODULES if m not in named] == []


def test_docs_name_no_module_that_is_gone():
    text = (ROOT / "docs" / "architecture.md").read_text()
    diagram = text.split("```")[1]
    words = set(re.findall(r"\b[a-z][a-z_]+\b", diagram))
    looks_like_module = {w for w in words if "_" in w or w in {"engine", "score", "model"}}
    assert sorted(looks_like_module - set(MODULES) - {"routes_"}) == []

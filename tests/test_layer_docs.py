"""The package docs agree with the layer contract in pyproject.toml ([tool.importlinter])."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _layers_bottom_up() -> list[str]:
    """Subpackage names of the layers contract, lowest layer first."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = (
        c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    )
    return [name.removeprefix("bayes_va.") for name in reversed(contract["layers"])]


def _docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text())) or ""


@pytest.mark.parametrize("layer", _layers_bottom_up())
def test_every_layer_package_says_what_it_holds(layer: str) -> None:
    init = ROOT / "bayes_va" / layer / "__init__.py"
    assert init.exists(), f"layer {layer} has no package"
    assert len(_docstring(init).split()) >= 10, f"bayes_va/{layer}/__init__.py: no docstring"


def test_the_package_docstring_lists_the_layers_in_contract_order() -> None:
    doc = _docstring(ROOT / "bayes_va" / "__init__.py")
    positions = []
    for layer in _layers_bottom_up():
        found = re.search(rf"``{layer}``", doc)
        assert found is not None, f"bayes_va/__init__.py does not name layer {layer}"
        positions.append(found.start())
    assert positions == sorted(positions), "layers named out of order (bottom first)"

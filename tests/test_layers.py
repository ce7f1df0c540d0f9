"""The layer rules hold: every import in gpuwatch/ is one its layer allows (pyproject.toml
[tool.gpuwatch.layers], the one declaration), every module has a layer, and the checker sees
every kind of import statement. test_cli_top.py checks what the dashboard actually loads."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from textwrap import dedent

import pytest

from tests.conftest import REPO
from tests.import_graph import ROOT, Layer, Rules, imports, layer_of, load_rules, modules, violations

PACKAGE = REPO / ROOT
RULES = load_rules(REPO / "pyproject.toml")


def test_every_import_is_one_its_layer_allows() -> None:
    found = violations(imports(PACKAGE), RULES)
    assert not found, "imports that break the layer rules:\n" + "\n".join(str(v) for v in found)


def test_every_module_has_a_layer() -> None:
    uncovered = [m for m in modules(PACKAGE) if m != ROOT and layer_of(m, RULES.layers) is None]
    assert not uncovered, f"no layer in pyproject.toml [tool.gpuwatch.layers] covers {uncovered}"


def test_every_layer_and_allowed_name_exists() -> None:
    """A typo in the declaration would allow nothing, or allow what it did not mean to."""
    known = modules(PACKAGE)
    for layer in RULES.layers.values():
        assert layer.name in known, f"layer {layer.name}: no such module or package"
        assert layer.rule, f"layer {layer.name} says no rule"
        for entry in layer.allow:
            if entry.split(".")[0] == ROOT:
                assert entry in known, f"layer {layer.name} allows {entry}: no such module or package"
            else:
                assert importlib.util.find_spec(entry) is not None, (
                    f"layer {layer.name} allows {entry}: not installed"
                )
    for name in RULES.guarded_stdlib:
        assert importlib.util.find_spec(name) is not None, name


def test_the_root_package_holds_only_the_version() -> None:
    """Every layer may import `gpuwatch` itself, so its __init__ must pull in nothing."""
    assert [i.target for i in imports(PACKAGE) if i.importer == ROOT] == []


def test_the_layer_rules_have_one_source() -> None:
    """No ruff banned-api table beside the declaration: ruff's per-folder tables replaced the
    root one instead of adding to it, and a deny-list misses what nobody thought to ban."""
    assert list(PACKAGE.rglob("ruff.toml")) == []
    ruff = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]
    assert "banned-api" not in ruff["lint"].get("flake8-tidy-imports", {})


# --------------------------------------------------------------------------- the checker itself


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / ROOT
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
    return root


TOY_RULES = Rules(
    {
        "gpuwatch.model": Layer("gpuwatch.model", "the data model imports nothing", ()),
        "gpuwatch.engine": Layer("gpuwatch.engine", "engine rule", ("gpuwatch.collect", "gpuwatch.model")),
        "gpuwatch.collect": Layer("gpuwatch.collect", "collector rule", ("gpuwatch.model", "pynvml")),
    },
    frozenset({"sqlite3"}),
)


def test_the_checker_finds_every_kind_of_import_a_layer_does_not_allow(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "model.py": "import json\n",
            "engine.py": "from gpuwatch.collect import nvml\n",
            "collect/__init__.py": "from . import nvml\n",
            "collect/nvml/__init__.py": "",
            "collect/nvml/collector.py": """\
                from __future__ import annotations

                import sqlite3
                from typing import TYPE_CHECKING

                import pynvml
                import textual.app

                from gpuwatch import model
                from gpuwatch import engine
                from gpuwatch.model import Thing
                from ...engine import Engine

                if TYPE_CHECKING:
                    import gpuwatch.engine as eng


                def later() -> None:
                    from gpuwatch import engine as e
                """,
            "stray.py": "import gpuwatch.model\n",
        },
    )
    found = sorted(
        (v.found.path.name, v.found.line, v.found.target) for v in violations(imports(package), TOY_RULES)
    )
    assert found == [
        ("collector.py", 3, "sqlite3"),  # a guarded standard-library module
        ("collector.py", 7, "textual.app"),  # a third-party library the layer does not list
        ("collector.py", 10, "gpuwatch.engine"),  # `from gpuwatch import engine`: a submodule
        ("collector.py", 12, "gpuwatch.engine"),  # relative
        ("collector.py", 15, "gpuwatch.engine"),  # under TYPE_CHECKING
        ("collector.py", 19, "gpuwatch.engine"),  # inside a function
        ("stray.py", 1, "gpuwatch.model"),  # a module no layer covers
    ]


def test_a_violation_names_the_file_line_and_rule(tmp_path: Path) -> None:
    package = _package(
        tmp_path, {"collect/__init__.py": "", "collect/host.py": "\nfrom gpuwatch.engine import Engine\n"}
    )
    (found,) = violations(imports(package), TOY_RULES)
    assert str(found) == (
        "gpuwatch/collect/host.py:2: gpuwatch.collect.host imports gpuwatch.engine, which layer "
        "gpuwatch.collect does not allow (collector rule); it may import only: gpuwatch.model, pynvml"
    )


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("gpuwatch.collect.nvml.collector", "gpuwatch.collect"),
        ("gpuwatch.collect", "gpuwatch.collect"),
        ("gpuwatch.engine", "gpuwatch.engine"),
        ("gpuwatch.engines", None),  # a name that merely starts like a layer is not in it
    ],
)
def test_a_module_belongs_to_the_layer_that_names_it_or_its_package(module: str, layer: str | None) -> None:
    found = layer_of(module, TOY_RULES.layers)
    assert (found.name if found else None) == layer

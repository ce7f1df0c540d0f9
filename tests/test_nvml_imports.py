"""The NVML collector sits below the engine: it imports only the data model and what lies beside it."""

from __future__ import annotations

import ast
from pathlib import Path

import gpuwatch.collect.nvml

PACKAGE = Path(gpuwatch.collect.nvml.__file__).parent

ALLOWED = {
    "gpuwatch",  # model and __version__
    "gpuwatch.model",
    "gpuwatch.config",
    "gpuwatch.catalog",
    "gpuwatch.catalog.nvml_codes",
    "gpuwatch.collect.contract",
    "gpuwatch.collect.host",
}
"""Besides the package's own modules: never the engine, store, serve, client, tui or demo."""


def gpuwatch_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "gpuwatch" or name.startswith("gpuwatch.")}


def test_nvml_modules_import_nothing_above_them() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        outside = {name for name in gpuwatch_imports(path) if not name.startswith("gpuwatch.collect.nvml")}
        assert outside <= ALLOWED, f"{path.name} imports {sorted(outside - ALLOWED)}"


def test_from_gpuwatch_imports_only_the_model_and_version() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "gpuwatch":
                names = {alias.name for alias in node.names}
                assert names <= {"model", "__version__"}, f"{path.name} imports {sorted(names)} from gpuwatch"

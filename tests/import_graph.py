"""The import graph of gpuwatch/, read with `ast`, and the layer rules it is held to.

The rules are declared once, in pyproject.toml (`[tool.gpuwatch.layers]`: an allow-list per
folder and per top-level module); tests/test_layers.py loads them with `load_rules`, builds the
graph with `imports` and asserts that `violations` finds nothing. Every import statement counts,
wherever it stands: at module level, inside a function, under `if TYPE_CHECKING:`, relative.
`from gpuwatch.x import y` is an import of `gpuwatch.x.y` when y is a submodule, else of
`gpuwatch.x`.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = "gpuwatch"


@dataclass(frozen=True, slots=True)
class Layer:
    name: str
    """A top-level module (`gpuwatch.cli`) or a package (`gpuwatch.tui`, with everything under it)."""
    rule: str
    allow: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rules:
    layers: Mapping[str, Layer]
    guarded_stdlib: frozenset[str]
    """Standard-library modules only a layer that lists them may import (`sqlite3`)."""


@dataclass(frozen=True, slots=True)
class Import:
    path: Path
    """The file, relative to the directory above the package (`gpuwatch/collect/host.py`)."""
    line: int
    importer: str
    target: str


@dataclass(frozen=True, slots=True)
class Violation:
    found: Import
    layer: Layer | None

    def __str__(self) -> str:
        where = f"{self.found.path}:{self.found.line}: {self.found.importer} imports {self.found.target}"
        if self.layer is None:
            return f"{where}, but no layer covers {self.found.importer}: add it to [tool.gpuwatch.layers]"
        return (
            f"{where}, which layer {self.layer.name} does not allow ({self.layer.rule}); "
            f"it may import only: {', '.join(self.layer.allow) or 'the standard library'}"
        )


def load_rules(pyproject: Path) -> Rules:
    table = tomllib.loads(pyproject.read_text())["tool"]["gpuwatch"]
    layers = {
        name: Layer(name, str(entry["rule"]), tuple(entry["allow"]))
        for name, entry in table["layers"].items()
    }
    return Rules(layers, frozenset(table.get("guarded-stdlib", ())))


def modules(package: Path) -> dict[str, Path]:
    """Every module of the package at `package` (a directory named like the root package)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(package: Path) -> list[Import]:
    known = modules(package)
    found = []
    for name, path in known.items():
        shown = path.relative_to(package.parent)
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [Import(shown, node.lineno, name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, name, is_package)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    target = submodule if submodule in known else base
                    found.append(Import(shown, node.lineno, name, target))
    return found


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def layer_of(module: str, layers: Mapping[str, Layer]) -> Layer | None:
    """The most specific layer covering `module`."""
    covering = [name for name in layers if module == name or module.startswith(name + ".")]
    return layers[max(covering, key=len)] if covering else None


def allowed(target: str, entries: Iterable[str]) -> bool:
    return any(target == e or target.startswith(e + ".") for e in entries)


def violations(found: Iterable[Import], rules: Rules) -> list[Violation]:
    out = []
    for imp in found:
        layer = layer_of(imp.importer, rules.layers)
        if layer is None:
            out.append(Violation(imp, None))
            continue
        top = imp.target.split(".")[0]
        if imp.target == ROOT or allowed(imp.target, (layer.name, *layer.allow)):
            continue
        if top in sys.stdlib_module_names and top not in rules.guarded_stdlib:
            continue
        out.append(Violation(imp, layer))
    return out

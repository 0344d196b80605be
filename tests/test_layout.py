"""The package's layout rules (docs/architecture.md): small modules and functions, imports that
point down the stages, and no import circle. Read from the source, nothing imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tuner"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60  # docstring included

#: What each stage may import of tuner (besides the shared ground: errors, contract).
ALLOWED = {
    "runtime": {"runtime"},
    "plugins": {"plugins", "runtime"},
    "data": {"data", "plugins", "runtime"},
    "storage": {"storage", "runtime"},
    "training": {"training", "data", "plugins", "storage", "runtime"},
    "after": {"after", "training", "data", "plugins", "storage", "runtime"},
    "study": {"study", "after", "training", "data", "plugins", "storage", "runtime"},
}
GROUND = {"tuner", "tuner.errors", "tuner.contract"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path, name: str) -> set[str]:
    """Every tuner module ``path`` imports, at its top or inside a function."""
    out: set[str] = set()
    known = modules()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "tuner"}
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: tuner imports itself by absolute names"
            base = node.module or ""
            if base.split(".")[0] != "tuner":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return out - {name}


def stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_no_module_is_over_the_limit():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_over_the_limit():
    long = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = lines
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_each_package_says_what_it_offers():
    for path in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc.split()) >= 5, f"{path} has no docstring saying what the package offers"


@pytest.mark.parametrize("module", [m for m in modules() if stage(m) is not None])
def test_imports_point_down_the_stages(module):
    own = stage(module)
    for target in imports_of(modules()[module], module):
        if target in GROUND or target.startswith("tuner.contract"):
            continue
        assert stage(target) in ALLOWED[own], f"{module} ({own}) imports {target}: not below it"


def test_after_the_study_and_storage_never_import_the_study_runner():
    for module, path in modules().items():
        if stage(module) in ("after", "storage"):
            bad = {t for t in imports_of(path, module) if t.startswith("tuner.study")}
            assert not bad, f"{module} imports {bad}"


def test_no_import_circle():
    # `from tuner import __version__` reads the version; tuner's own __init__ imports the API only
    # when tuner.optimize is first used, so it is no edge of the graph.
    graph = {m: (imports_of(p, m) & set(modules())) - {"tuner"} for m, p in modules().items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])

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
    "search": {"search", "storage", "runtime"},
    "training": {"training", "data", "plugins", "runtime"},
    "planning": {"planning", "training", "data", "plugins", "runtime"},
    "trial": {"trial", "search", "training", "data", "plugins", "storage", "runtime"},
    "after": {"after", "trial", "search", "training", "data", "plugins", "storage", "runtime"},
    "study": {"study", "trial", "planning", "search", "training", "data", "plugins", "storage", "runtime"},
    "execution": {"execution", "study", "trial", "planning", "search", "training", "data", "plugins", "storage",
                  "runtime"},
}
GROUND = {"tuner", "tuner.errors", "tuner.contract", "tuner.faces"}


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


def libraries_of(path: Path) -> set[str]:
    """Every top-level library ``path`` imports, at its top or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


#: What each room must never import, tuner's rooms and libraries alike (docs/architecture.md).
NEVER = {
    "training": {"optuna", "tuner.search", "tuner.trial", "tuner.study", "tuner.execution"},
    "search": {"torch", "tuner.training", "tuner.trial", "tuner.execution", "tuner.planning"},
    "trial": {"tuner.execution", "tuner.study"},
    "after": {"tuner.study", "tuner.execution"},
    "storage": {"tuner.study", "tuner.execution", "tuner.trial"},
}


@pytest.mark.parametrize("room", sorted(NEVER))
def test_a_room_never_imports_what_it_must_not(room):
    for module, path in modules().items():
        if stage(module) != room:
            continue
        used = libraries_of(path) | {".".join(t.split(".")[:2]) for t in imports_of(path, module)}
        bad = used & NEVER[room]
        assert not bad, f"{module} ({room}) imports {sorted(bad)}"


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


def test_each_face_offers_what_it_lists_and_shadows_no_module():
    """A package's ``__all__`` is its ``OFFERS``; each name resolves from its module, and none is the
    name of one of the package's modules (``from pkg import name`` would give the module)."""
    import importlib

    for path in sorted(PACKAGE.glob("*/__init__.py")):
        package = importlib.import_module(f"tuner.{path.parent.name}")
        offers = getattr(package, "OFFERS", None)
        if offers is None:
            continue
        assert package.__all__ == sorted(offers), path
        for name, module in offers.items():
            assert not (path.parent / f"{name}.py").exists(), f"{package.__name__}.{name} is also a module"
            assert getattr(package, name) is getattr(importlib.import_module(f"{package.__name__}.{module}"), name)


def test_benchmarks_and_tests_import_what_a_face_offers_from_the_face():
    root = PACKAGE.parent
    faces = {p.parent.name: ast.literal_eval(_offers_node(p)) for p in PACKAGE.glob("*/__init__.py") if _offers_node(p)}
    wrong = []
    for path in [*sorted((root / "tests").rglob("*.py")), *sorted((root / "benchmarks").rglob("*.py"))]:
        if "packages" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").count(".") == 2 and \
                    node.module.startswith("tuner."):
                _, package, module = node.module.split(".")
                wrong += [f"{path.relative_to(root)}: {a.name}" for a in node.names
                          if faces.get(package, {}).get(a.name) == module]
    assert not wrong, f"imported past the package's face: {wrong}"


def _offers_node(path: Path) -> str | None:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "OFFERS" for t in node.targets):
            return ast.unparse(node.value)
    return None

"""The package's layout rules (docs/architecture.md): no import cycle, small modules, no private imports."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE_ROOTS = [SRC / "rail" / "deepdisc", SRC / "rail" / "estimation", SRC / "rail" / "creation",
                 SRC / "rail" / "evaluation", SRC / "rail" / "tools"]
#: Longest module, in lines (docstrings and comments included).
MAX_MODULE_LINES = 400


def _modules():
    modules = {}
    for root in PACKAGE_ROOTS:
        for path in root.rglob("*.py"):
            if path.name == "_version.py":
                continue
            parts = path.relative_to(SRC).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            modules[name] = (path, is_package)
    return modules


MODULES = _modules()


def _imports(name):
    """(target module, imported name, line) of every import in module ``name``, deferred ones included."""
    path, is_package = MODULES[name]
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                yield module, alias.name, node.lineno


def _edges():
    """Module -> modules of this project it imports (a package's re-export ``__init__`` is not an edge)."""
    graph = {}
    for name in MODULES:
        targets = set()
        for module, imported, _ in _imports(name):
            submodule = f"{module}.{imported}" if imported else module
            if submodule in MODULES:
                target = submodule
            elif module in MODULES:
                target = module
            else:
                continue
            if MODULES[target][1] or target == name:  # packages re-export; they are not the provider
                continue
            targets.add(target)
        graph[name] = targets
    return graph


def _find_cycles(graph):
    """Every cycle met by a depth-first walk of ``graph`` (dict: node -> set of nodes), as node lists."""
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_cycle():
    cycles = _find_cycles(_edges())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_cycle_finder_finds_cycles_and_only_them():
    assert _find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_graph_sees_deferred_imports():
    # rail.deepdisc.cli imports its subcommands by name at run time, the stages import the library in functions
    graph = _edges()
    assert "rail.deepdisc.exceptions" in graph["rail.deepdisc.cli"]
    assert any(t.startswith("rail.deepdisc.inference") for t in graph["rail.estimation.algos.deepdisc"])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small(name):
    lines = len(MODULES[name][0].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{MODULES[name][0]}: {lines} lines (split it by concern)"


def test_no_private_name_imported_across_modules():
    offenders = []
    for name in MODULES:
        for module, imported, line in _imports(name):
            if imported and imported.startswith("_") and not imported.startswith("__"):
                if module.startswith("rail.") and module != name:
                    offenders.append(f"{MODULES[name][0].relative_to(SRC)}:{line} imports {module}.{imported}")
    assert not offenders, "\n".join(offenders)

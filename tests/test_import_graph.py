"""The package's import graph has no cycle, function-level imports included.

Every module of grok_lightning/ and of the top-level callbacks/ folder (installed as
grok_lightning.callbacks, see pyproject.toml's package-dir; `callbacks.x` and
`grok_lightning.callbacks.x` name the same module) is parsed with ast, and every `import` and
`from ... import` in it counts, wherever it stands: at module level, inside a function, inside a
try or an if. Relative imports are resolved against the importing module's package.

What an import depends on:
- `import a.b.c` and `from a.b.c import name` depend on the module a.b.c (its `__init__` when it is
  a package), and `from a.b import c` on a.b.c when c is a submodule, on a.b's `__init__` otherwise.
- The parent packages that Python runs first (a and a.b for `import a.b.c`) do not count: a
  package `__init__` that re-exports its submodules would otherwise close a loop with every
  submodule that imports a sibling by its full name. A module that wants a name from a package's
  `__init__` (`from a.b import SomeClass`, `from . import X`) does depend on that `__init__`, and
  that `__init__` may then not import the module back, not even inside a function.
- Imports of modules outside the package (torch, lightning, ...) are not nodes.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "grok_lightning"
# source folder -> the dotted name it is installed as
FOLDERS = {ROOT / "grok_lightning": "grok_lightning", ROOT / "callbacks": "grok_lightning.callbacks"}
ALIASES = {"callbacks": "grok_lightning.callbacks"}  # a top-level import name -> the installed name


def module_files() -> Dict[str, tuple]:
    """Dotted module name -> (path, is_package)."""
    out = {}
    for folder, dotted in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            out[".".join((dotted, *parts))] = (path, is_package)
    return out


def canonical(name: str) -> str:
    for alias, real in ALIASES.items():
        if name == alias or name.startswith(alias + "."):
            return real + name[len(alias) :]
    return name


def imports_of(module: str, path: Path, is_package: bool, known: Set[str]) -> Set[str]:
    """The package modules that `module` imports, anywhere in its body."""
    package = module if is_package else module.rpartition(".")[0]
    deps: Set[str] = set()

    def target(name: str) -> Optional[str]:
        name = canonical(name)
        # the deepest known module that the dotted name names (a.b.c.attr -> a.b.c)
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (dep := target(alias.name)) is not None:
                    deps.add(dep)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = canonical(node.module or "")
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                dep = sub if sub in known else target(source)
                if dep is not None:
                    deps.add(dep)
    deps.discard(module)
    return deps


def import_graph() -> Dict[str, Set[str]]:
    files = module_files()
    known = set(files)
    return {m: imports_of(m, path, is_pkg, known) for m, (path, is_pkg) in files.items()}


def strongly_connected(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Tarjan's components with more than one module, each sorted, iteratively (no recursion limit)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    out: List[List[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def one_cycle(graph: Dict[str, Set[str]], component: List[str]) -> List[str]:
    """A shortest cycle through the component's first module, as a path that returns to it."""
    members = set(component)
    start = component[0]
    previous: Dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start] + path[::-1][1:] + [start]
                if child not in previous:
                    previous[child] = node
                    nxt.append(child)
        frontier = nxt
    return component


def test_every_module_is_parsed():
    graph = import_graph()
    assert "grok_lightning.runs" in graph and "grok_lightning.callbacks.trajectory" in graph
    # the alias resolves: an explorer page reads a callback's file through grok_lightning.callbacks
    assert "grok_lightning.callbacks.fourier_stars" in graph["grok_lightning.explorer.run_page"]


def test_function_level_imports_count():
    # grok_lightning/__init__.py imports record only inside load_run
    assert "grok_lightning.record" in import_graph()["grok_lightning"]


def test_no_import_cycle():
    graph = import_graph()
    cycles = [" -> ".join(one_cycle(graph, c)) for c in strongly_connected(graph)]
    assert not cycles, "import cycles (function-level imports included):\n" + "\n".join(cycles)


def test_a_cycle_is_found_and_printed():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    (component,) = strongly_connected(graph)
    assert component == ["a", "b", "c"]
    assert one_cycle(graph, component) == ["a", "b", "c", "a"]


# docs/architecture.md's pure rooms: no Lightning and no W&B, not through any module they import
PURE = (
    "schema",
    "runs",
    "outcome",
    "fate",
    "forecast",
    "histories",
    "fourier",
    "figures",
    "phase_diagram",
    "numerics_figures",
    "tasks.operations",
    "sweep.eta",
)
IMPURE = {"lightning", "pytorch_lightning", "wandb"}


def outside_imports(path: Path) -> Set[str]:
    """The top-level names of the packages outside grok_lightning that a module imports, anywhere."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out - {PACKAGE, *ALIASES}


def test_pure_modules_import_no_lightning_or_wandb():
    graph, files = import_graph(), module_files()
    for room in PURE:
        start = [m for m in graph if m == f"{PACKAGE}.{room}" or m.startswith(f"{PACKAGE}.{room}.")]
        assert start, room
        seen, todo = set(), list(start)
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            bad = outside_imports(files[module][0]) & IMPURE
            assert not bad, f"{room} reaches {module}, which imports {', '.join(sorted(bad))}"
            todo += graph[module]

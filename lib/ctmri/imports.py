"""The package's import graph, read from the source (ast, nothing imported): which modules a notebook stage
reaches, and whether any modules import each other in a cycle. The Makefile's stage prerequisites and the
import-cycle test both come from here, so neither is kept by hand."""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Iterable

PACKAGE = "ctmri"
LIB = Path(__file__).resolve().parent          # lib/ctmri


def module_file(module: str, lib: Path = LIB) -> Path | None:
    """The file of `ctmri.a.b` (a.b.py or a/b/__init__.py), None when it is not a module of the package."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = lib.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, lib: Path = LIB) -> str:
    rel = path.resolve().relative_to(lib).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, lib: Path = LIB, here: str = "") -> set[str]:
    """The package modules a piece of source imports, anywhere in it (module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                    # relative: resolve against the importing module
                anchor = here.split(".")[: -node.level] if here else []
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in targets:
            if name.split(".")[0] == PACKAGE and module_file(name, lib) is not None:
                found.add(name)
    return found


def import_graph(lib: Path = LIB) -> dict[str, set[str]]:
    """module -> the package modules it imports, for every .py file under lib/ctmri."""
    graph: dict[str, set[str]] = {}
    for path in sorted(lib.rglob("*.py")):
        name = module_name(path, lib)
        graph[name] = imported_modules(path.read_text(encoding="utf-8"), lib, name) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle (as a list of modules, first = last), found by depth-first search; [] when there is none.
    A package's __init__ importing its own submodules is not counted (Python imports the package first)."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):                   # package -> its own submodule
                continue
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def notebook_modules(notebook: Path, lib: Path = LIB) -> set[str]:
    """The package modules a notebook's code cells import (IPython magics and shell lines skipped)."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    code = "\n".join(line for c in cells if c["cell_type"] == "code"
                     for line in "".join(c["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
    return imported_modules(code, lib)


def reached(modules: Iterable[str], graph: dict[str, set[str]]) -> set[str]:
    """`modules` and everything they import, transitively, with the packages that hold them."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))    # parent packages' __init__
        todo.extend(graph.get(m, ()))
    return seen


def stage_files(notebook: Path, lib: Path = LIB) -> list[Path]:
    """The source files a notebook stage runs: what it imports, transitively (its Make prerequisites)."""
    graph = import_graph(lib)
    files = {module_file(m, lib) for m in reached(notebook_modules(notebook, lib), graph)}
    return sorted(f for f in files if f is not None)

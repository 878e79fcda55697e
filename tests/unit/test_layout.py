"""The package's layout rules, checked on its source: modules small, imports one way
(no cycles), no private names imported across modules, every subcommand in insitu/cli/."""

from __future__ import annotations

import ast
from pathlib import Path

import insitu

PACKAGE = Path(insitu.__file__).resolve().parent


def modules() -> dict:
    """dotted name -> (path, is_package) for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["insitu", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def imports(name: str, path: Path, is_package: bool, top_level_only: bool):
    """(imported module, imported names) of each import statement."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [alias.name for alias in node.names]


def test_no_module_over_400_lines():
    long = {n: len(p.read_text().splitlines()) for n, (p, _) in modules().items()}
    assert {n: k for n, k in long.items() if k > 400} == {}


def test_no_import_cycle_between_modules():
    mods = modules()
    graph = {}
    for name, (path, is_pkg) in mods.items():
        deps = set()
        for target, names in imports(name, path, is_pkg, top_level_only=True):
            for t in [target] + [f"{target}.{n}" for n in names]:
                if t in mods and t != name and not name.startswith(t + "."):
                    deps.add(t)
        graph[name] = deps
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in graph[node]:
            assert state.get(dep) != "open", f"import cycle: {' -> '.join(stack + [dep])}"
            if dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_no_private_name_imported_from_another_module():
    bad = []
    for name, (path, is_pkg) in modules().items():
        for target, names in imports(name, path, is_pkg, top_level_only=False):
            if target.startswith("insitu"):
                bad += [f"{name}: from {target} import {n}" for n in names
                        if n.startswith("_") and n != "__version__"]
    assert bad == []


def test_every_subcommand_is_defined_once_in_the_cli_package():
    outside = [n for n, (p, _) in modules().items()
               if not n.startswith("insitu.cli") and
               any(s in p.read_text() for s in ("ArgumentParser(", "add_subparsers(",
                                                "add_parser("))]
    assert outside == []
    from insitu.cli import COMMANDS

    names = [name for name, _ in COMMANDS]
    assert len(names) == len(set(names))


def test_data_paths_never_come_from_the_source_tree_layout():
    offenders = [n for n, (p, _) in modules().items()
                 if "parents[" in p.read_text() and n != "insitu.launch"]
    assert offenders == []

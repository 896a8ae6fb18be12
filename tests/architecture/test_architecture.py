"""The wings' import rules, read from the source: which wing may import which, the few
imports that are never allowed, and no import cycles. Every import counts, including the
ones inside functions (a lazy import is still a dependency)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = ROOT / "host"
WINGS = ("core", "net", "cluster", "releases", "setup", "update", "support", "console")
# What each part of host/ may import (itself always). Top-level modules are their own part.
ALLOWED = {
    "core": set(),
    "net": {"core"},
    "cluster": {"core"},
    "releases": {"core", "net", "cluster"},
    "setup": {"core", "net", "cluster", "releases"},
    "update": {"core", "net", "cluster", "releases", "setup"},
    "support": {"core", "net", "cluster", "releases", "setup"},
    "console": {"core", "net", "releases", "setup", "support"},  # support: its request only
    "status": {"core", "net", "cluster", "releases"},  # releases: how a release is named
    "web": {"core", "net", "releases", "setup", "support", "update"},
    # The app's body cap and security headers; the certificate; the HTTPS front.
    "web_server": {"web", "core", "web_tls"},
    "web_tls": set(),  # hands connections to the server it is given
    "cli": {"core", "net", "cluster", "releases", "setup", "update", "support", "console",
            "status", "web", "web_server"},
    "__main__": {"cli"},
}
# Imports never allowed, whatever the table says: (importer prefix, imported prefix, why).
FORBIDDEN = (
    ("host.support", "host.setup.phases", "support reads state; it never runs a phase"),
    ("host.support", "host.setup.engine", "support reads state; it never runs a phase"),
    ("host.update", "host.setup.phases", "updates share checks, not the phases' code"),
    ("host.update", "host.setup.engine", "updates take the lock, not the phase engine"),
    ("host.web", "host.setup.engine", "the web process hands work to systemd"),
    ("host.web", "host.setup.phases", "the web process hands work to systemd"),
    ("host.console", "host.support.bundle", "the console asks for a bundle as the web does"),
    ("host.console", "host.support.collectors", "the console asks for a bundle as the web does"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name: str) -> str:
    """The module an imported dotted name is: a module or package, or its parent when the
    last part is a name defined in it."""
    path = ROOT.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
        return name
    return name.rsplit(".", 1)[0]


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every host or isobuild module `path` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, resolve(f"{node.module}.{alias.name}"))
                      for alias in node.names]
    return [(line, name) for line, name in found
            if name.split(".")[0] in ("host", "isobuild")]


def part(module: str) -> str:
    """The wing a host module belongs to (or the top-level module's own name)."""
    return module.split(".")[1] if module.count(".") else "host"


SOURCES = sorted([*HOST.rglob("*.py"), *(ROOT / "isobuild").rglob("*.py")])
GRAPH = {module_name(path): imports(path) for path in SOURCES}


def test_the_tree_shows_the_wings():
    assert {p.name for p in HOST.iterdir() if (p / "__init__.py").is_file()} == set(WINGS)
    top_level = {p.stem for p in HOST.glob("*.py")} - {"__init__"}
    assert top_level == set(ALLOWED) - set(WINGS)


@pytest.mark.parametrize("module", [m for m in GRAPH if m.startswith("host.")])
def test_wing_imports_only_what_it_may(module):
    own = part(module)
    wrong = [f"{module} line {line}: imports {name} ({part(name)} is not allowed in {own}; "
             f"it may import {', '.join(sorted(ALLOWED[own])) or 'only itself'})"
             for line, name in GRAPH[module]
             if name.startswith("host.") and part(name) not in ALLOWED[own] | {own, "host"}]
    wrong += [f"{module} line {line}: imports {name}: {why}"
              for line, name in GRAPH[module]
              for importer, imported, why in FORBIDDEN
              if module.startswith(importer) and name.startswith(imported)]
    assert not wrong, "\n".join(wrong)


def test_only_the_cli_imports_the_console():
    wrong = [f"{module} line {line}: imports {name}" for module, found in GRAPH.items()
             for line, name in found if name.startswith("host.console")
             and not module.startswith("host.console") and module != "host.cli"]
    assert not wrong, "\n".join(wrong)


def test_isobuild_imports_only_host_core():
    wrong = [f"{module} line {line}: imports {name}" for module, found in GRAPH.items()
             if module.startswith("isobuild") for line, name in found
             if name.startswith("host") and not name.startswith("host.core")]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    edges = {module: {name for _, name in found if name in GRAPH and name != module}
             for module, found in GRAPH.items()}
    cycles, state = [], {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "visiting"
        for target in sorted(edges[module]):
            if state.get(target) == "visiting":
                cycles.append(" -> ".join([*stack[stack.index(target):], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_rules_catch_a_wrong_import(tmp_path):
    """The checks above read what they claim to: a core module importing setup is found."""
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from host.setup import engine\n")
    found = imports(source)
    assert found == [(2, "host.setup.engine")]
    assert part(found[0][1]) not in ALLOWED["core"] | {"core"}

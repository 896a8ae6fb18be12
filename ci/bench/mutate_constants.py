"""Mutate a module's module-level constants, which mutmut 3 leaves alone, and run its fast
tests against each mutant (ci/bench/mutation.sh runs this in its copy of the tree).

    python mutate_constants.py MODULE.py... -- TEST...

A constant is a module-level assignment to an UPPER_CASE name. Each literal inside its
value is mutated once: a string gets "XX" appended (an empty one becomes "XX"), a number
+1, a boolean flipped, and each element of a tuple, list or set of literals is dropped in
turn. A mutant is killed when the tests fail (or do not finish in TIMEOUT seconds).
The tests run in a network namespace of their own (as mutmut's do, by
ci/bench/mutmut_subprocesses.py), so runs side by side never meet on a port.
Prints killed/total and every survivor as MODULE:LINE NAME: what changed.
"""

import ast
import subprocess
import sys
from pathlib import Path

TIMEOUT = 300
# Root's `unshare` (util-linux): a new network namespace with its loopback up, then the tests.
OWN_NETWORK = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def mutants(source: str) -> list[tuple[str, str, str]]:
    """(constant name, description, mutated source) for every mutation of `source`."""
    tree = ast.parse(source)
    found = []
    for statement in tree.body:
        targets = (statement.targets if isinstance(statement, ast.Assign)
                   else [statement.target] if isinstance(statement, ast.AnnAssign) else [])
        names = [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
        if not names or statement.value is None:
            continue
        for node in ast.walk(statement.value):
            for description, replacement in _mutations(node):
                found.append((names[0], f"line {node.lineno}: {description}",
                              _replace(source, node, replacement)))
    return found


def _mutations(node: ast.AST) -> list[tuple[str, str]]:
    if isinstance(node, ast.Constant) and not isinstance(node.value, bytes):
        value = node.value
        if isinstance(value, bool):
            return [(f"{value} -> {not value}", repr(not value))]
        if isinstance(value, int | float):
            return [(f"{value} -> {value + 1}", repr(value + 1))]
        if isinstance(value, str):
            return [(f"{value[:40]!r} -> {value[:40] + 'XX'!r}", repr(value + "XX"))]
    if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) > 1:
        found = []
        for index, element in enumerate(node.elts):
            kept = [ast.unparse(e) for i, e in enumerate(node.elts) if i != index]
            opening, closing = {ast.Tuple: "()", ast.List: "[]", ast.Set: "{}"}[type(node)]
            tail = "," if isinstance(node, ast.Tuple) and len(kept) == 1 else ""
            found.append((f"drop {ast.unparse(element)[:40]}",
                          f"{opening}{', '.join(kept)}{tail}{closing}"))
        return found
    return []


def _replace(source: str, node: ast.AST, replacement: str) -> str:
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()))
    data = source.encode()
    start = offsets[node.lineno - 1] + node.col_offset
    end = offsets[node.end_lineno - 1] + node.end_col_offset
    return (data[:start] + replacement.encode() + data[end:]).decode()


def killed(tests: list[str]) -> bool:
    try:
        result = subprocess.run([*OWN_NETWORK, sys.executable, "-m", "pytest", "-q", "-x",
                                 "-p", "no:cacheprovider", *tests], capture_output=True,
                                timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return True
    return result.returncode != 0


def main(arguments: list[str]) -> int:
    split = arguments.index("--")
    modules, tests = arguments[:split], arguments[split + 1:]
    if killed(tests):
        print("constants: the tests fail unmutated; nothing to measure", file=sys.stderr)
        return 1
    total, survivors = 0, []
    for module in modules:
        path = Path(module)
        original = path.read_text()
        try:
            for name, description, mutated in mutants(original):
                total += 1
                path.write_text(mutated)
                if not killed(tests):
                    survivors.append(f"{module} {name} {description}")
        finally:
            path.write_text(original)
    done = total - len(survivors)
    score = 100 * done / total if total else 100
    print(f"constants: {done}/{total} killed ({score:.1f} %)")
    for survivor in survivors:
        print("   survivor", survivor)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

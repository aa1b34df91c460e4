"""Checks of a package's layering, read with `ast` (nothing is imported): import circles,
imports inside functions, and one module reaching into another's underscore names.

Each check takes the package's folder and its dotted name (e.g. `host/raidboard`, `raidboard`)
and returns a list of findings as text, `path:line: what`; an empty list passes.
"""
import ast
from pathlib import Path


def modules(root, prefix):
    """{dotted module name: path} of every .py file under `root`, the package `prefix`."""
    root = Path(root)
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(([prefix] if prefix else []) + parts)] = path
    return found


def _tree(path):
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _package_of(name, path):
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _targets(node, name, path, known):
    """The modules of `known` that an Import/ImportFrom node in module `name` (file `path`) loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    base = node.module or ""
    if node.level:
        pkg = _package_of(name, path)
        for _ in range(node.level - 1):
            pkg = pkg.rpartition(".")[0]
        base = pkg + ("." + base if base else "")
    got = []
    for a in node.names:
        sub = base + "." + a.name
        if sub in known:
            got.append(sub)         # from pkg import module
        elif base in known:
            got.append(base)        # from module import name
    return got


def _walk_imports(tree):
    """(node, at module level?) for every import in a module."""
    def visit(node, top):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, top
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                   ast.Lambda))
            yield from visit(child, inner)
    yield from visit(tree, True)


def import_graph(root, prefix):
    """{module: {imported module of the package: first line}}, module- and function-level imports alike."""
    known = modules(root, prefix)
    graph = {}
    for name, path in known.items():
        edges = graph.setdefault(name, {})
        for node, _ in _walk_imports(_tree(path)):
            for target in _targets(node, name, path, known):
                if target != name:
                    edges.setdefault(target, node.lineno)
    return graph


def import_cycles(root, prefix):
    """Every import circle among the package's modules, each as `a -> b -> ... -> a` with the lines."""
    graph = import_graph(root, prefix)
    paths = modules(root, prefix)
    cycles, seen = [], set()
    for start in sorted(graph):
        # shortest way back to `start` (breadth first), one report per set of modules
        back = {start: None}
        queue = [start]
        found = None
        while queue and found is None:
            node = queue.pop(0)
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found = node
                    break
                if nxt not in back:
                    back[nxt] = node
                    queue.append(nxt)
        if found is None:
            continue
        ring = [found]
        while back[ring[-1]] is not None:
            ring.append(back[ring[-1]])
        ring.reverse()
        if frozenset(ring) in seen:
            continue
        seen.add(frozenset(ring))
        steps = ["%s (%s:%d)" % (a, paths[a], graph[a][b]) for a, b in zip(ring, ring[1:] + ring[:1])]
        cycles.append(" -> ".join(steps + [start]))
    return cycles


def function_imports(root, prefix, allowed=()):
    """Imports not at a module's top level. `allowed` holds (module, line text) pairs of the justified
    exceptions; each of those must carry its reason as a comment on the same line."""
    found = []
    allowed = {(m, t.strip()) for m, t in allowed}
    for name, path in modules(root, prefix).items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node, top in _walk_imports(_tree(path)):
            if top:
                continue
            line = lines[node.lineno - 1].strip()
            if (name, line) in allowed and "#" in line:
                continue
            found.append("%s:%d: import inside a function or class: %s" % (path, node.lineno, line))
    return found


def _dunder(attr):
    return attr.startswith("__") and attr.endswith("__")


def _own(value):
    # self._x, cls._x and super()._x are an object's access to its own names
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"


def private_access(root, prefix, allowed=()):
    """`from mod import _x`, `mod._x` and `obj._x` (obj neither self nor cls): a module using names
    another module or object keeps to itself. `allowed` holds (module, `obj._x`) pairs of the justified
    exceptions (a library offering no public name); each line of one carries its reason as a comment."""
    found = []
    allowed = set(allowed)
    for name, path in modules(root, prefix).items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    if a.name.startswith("_") and not _dunder(a.name):
                        found.append("%s:%d: imports underscore name %s from %s"
                                     % (path, node.lineno, a.name, "." * node.level + (node.module or "")))
            elif isinstance(node, ast.Attribute):
                if node.attr.startswith("_") and not _dunder(node.attr) and not _own(node.value):
                    if (name, ast.unparse(node)) in allowed and "#" in lines[node.lineno - 1]:
                        continue
                    found.append("%s:%d: reaches into %s.%s" % (path, node.lineno, ast.unparse(node.value),
                                                                node.attr))
    return found

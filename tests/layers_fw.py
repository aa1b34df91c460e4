"""What the firmware's imports and name accesses say about its layers, read with `ast` (CPython).

The firmware (MicroPython) is never imported here: each module's source is parsed. Module names are
the firmware's own, absolute from firmware/ (`hw.nvram`, `endpoints.console.menu`, `main`).
`python3 tests/layers_fw.py` prints every violation, one a line.
"""
import ast
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"

# bottom up (firmware/README.md): a module may import its own package and the layers below its own
LAYERS = ("hw", "storage", "snapshot", "lop", "scsi", "control", "endpoints", "main")
TOP = ("main", "factory")          # firmware/main.py and the factory tool: the top layer

# function-level imports that are allowed, each with why: {(module, imported module): reason}
FUNCTION_IMPORTS_ALLOWED = {}
# underscore names of code that is not ours that a module may reach, each with why:
# {(module, "expression._name"): reason}
FOREIGN_PRIVATE_ALLOWED = {
    ("endpoints.ioready", "asyncio.core._io_queue"):
        "MicroPython's asyncio offers no public wait on a raw socket or fd; its own streams use this queue",
}


class Module:
    def __init__(self, name, path, root):
        self.name = name
        self.path = path
        self.rel = path.relative_to(root.parent).as_posix()      # firmware/hw/nvram.py
        self.tree = ast.parse(path.read_text(), str(path))
        self.package = name if path.name == "__init__.py" else name.rpartition(".")[0]


def modules(root=FIRMWARE):
    # {name: Module} of every .py below root
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            found[".".join(parts)] = Module(".".join(parts), path, root)
    return found


def layer(name):
    # rank of a module's layer in LAYERS
    head = name.split(".")[0]
    return LAYERS.index("main" if head in TOP else head)


def imports(mod, known):
    # [(line, firmware module imported, node, inside a function)] of every import statement
    out = []

    def visit(node, in_func):
        for child in ast.iter_child_nodes(node):
            inner = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    out.append((child.lineno, a.name, child, inner))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = mod.package.split(".") if mod.package else []
                    pkg = pkg[:len(pkg) - (child.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                for a in child.names:
                    sub = base + "." + a.name if base else a.name
                    # `from hw import nvram` imports the module hw.nvram; `from hw.nvram import X` hw.nvram
                    out.append((child.lineno, sub if sub in known else base, child, inner))
            visit(child, inner)

    visit(mod.tree, False)
    return [(line, name, node, inner) for line, name, node, inner in out if name in known]


def graph(mods):
    # {importer: {imported: first line}} over the firmware's own modules
    g = {}
    for name, mod in mods.items():
        edges = g.setdefault(name, {})
        for line, target, _node, _inner in imports(mod, mods):
            if target != name:
                edges.setdefault(target, line)
    return g


def cycles(g):
    # the import circles: one list of modules per strongly connected component (Tarjan)
    index, low, stack, on, comps = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    return comps


def cycle_path(g, comp):
    # one circle through the component, as [(module, line of its import of the next)]
    members = set(comp)
    start = comp[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in g[path[-1]] if w in members)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            break
        step = [w for w in nxt if w not in seen]
        if not step:
            break
        path.append(step[0])
        seen.add(step[0])
    return [(path[i], g[path[i]].get(path[(i + 1) % len(path)])) for i in range(len(path))]


def circle_violations(mods):
    g = graph(mods)
    out = []
    for comp in cycles(g):
        hops = cycle_path(g, comp)
        text = " -> ".join("%s (%s:%s)" % (m, mods[m].rel, line) for m, line in hops)
        inside = sorted(["%s:%d: %s imports %s" % (mods[a].rel, line, a, b)
                         for a in comp for b, line in g[a].items() if b in comp], key=_by_place)
        out.append("import circle among %s: %s -> %s; every import inside it:\n    %s"
                   % (", ".join(comp), text, hops[0][0], "\n    ".join(inside)))
    return out


def may_import(importer, target):
    # True when the layer plan lets `importer` import `target`
    a, b = layer(importer), layer(target)
    if b < a:
        return True
    if b > a:
        return False
    # the same layer: its own package, or a module at the top of the layer (endpoints/listen.py is
    # shared by console/ and iscsi/), never a sibling package (console/ and iscsi/ know nothing of each other)
    ipkg = importer.rpartition(".")[0]
    tpkg = target.rpartition(".")[0]
    return tpkg == ipkg or ipkg.startswith(tpkg + ".") or tpkg == "" or importer.split(".")[0] in TOP


def upward_violations(mods):
    out = []
    for name, mod in sorted(mods.items()):
        for line, target, _node, _inner in imports(mod, mods):
            if target != name and not may_import(name, target):
                out.append("%s:%d: %s imports %s (layer %s is above %s)"
                           % (mod.rel, line, name, target, LAYERS[layer(target)], LAYERS[layer(name)]))
    return out


def function_import_violations(mods):
    out = []
    for name, mod in sorted(mods.items()):
        for node in ast.walk(mod.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)) and inner is not node:
                        what = ", ".join(a.name for a in inner.names)
                        if isinstance(inner, ast.ImportFrom):
                            src, text = inner.module, "from %s import %s" % (inner.module, what)
                        else:
                            src, text = what, "import " + what
                        if (name, src) not in FUNCTION_IMPORTS_ALLOWED:
                            out.append("%s:%d: %s inside %s()" % (mod.rel, inner.lineno, text, node.name))
    # a nested function is walked twice (its own def and its enclosing one): one report a line
    return sorted(set(out), key=_by_place)


def _by_place(text):
    path, line, _ = text.split(":", 2)
    return path, int(line)


def _private(attr):
    return attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))


def own_private_names(mod):
    # underscore names this module defines: module-level names, methods, attributes set on self/cls
    names = set()
    for node in ast.walk(mod.tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            names.add(node.attr)
    return {n for n in names if _private(n)}


def private_access_violations(mods):
    # `mod._x`, `from mod import _x`, and `obj._x` with obj neither self nor cls, unless _x is an
    # underscore name of this very module (one of its classes reaching another instance of itself)
    out = []
    for name, mod in sorted(mods.items()):
        module_names = set()
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Import):
                module_names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                for a in node.names:
                    full = (node.module or "") + "." + a.name
                    if full in mods or not node.module:
                        module_names.add(a.asname or a.name)
                    if _private(a.name):
                        out.append("%s:%d: from %s import %s (another module's underscore name)"
                                   % (mod.rel, node.lineno, node.module, a.name))
        own = own_private_names(mod)
        for node in ast.walk(mod.tree):
            if not isinstance(node, ast.Attribute) or not _private(node.attr):
                continue
            v = node.value
            if isinstance(v, ast.Name) and v.id in ("self", "cls"):
                continue
            if isinstance(v, ast.Name) and v.id in module_names:
                out.append("%s:%d: %s.%s (module %s's underscore name)" % (mod.rel, node.lineno, v.id, node.attr, v.id))
            elif node.attr not in own and (name, "%s.%s" % (ast.unparse(v), node.attr)) not in FOREIGN_PRIVATE_ALLOWED:
                out.append("%s:%d: %s.%s (an underscore name of another object)"
                           % (mod.rel, node.lineno, ast.unparse(v), node.attr))
    return sorted(out, key=_by_place)


def all_violations(mods=None):
    mods = mods or modules()
    return {"import circles": circle_violations(mods),
            "imports from a higher layer": upward_violations(mods),
            "function-level imports": function_import_violations(mods),
            "underscore names of other modules and objects": private_access_violations(mods)}


if __name__ == "__main__":
    for what, found in all_violations().items():
        print("## %s: %d" % (what, len(found)))
        for v in found:
            print(v)

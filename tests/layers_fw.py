"""The firmware's layer order (firmware/README.md "Architecture"), read with `ast` (CPython): a
module imports its own package and the layers below its own, never one above. The checks every
package shares (import circles, imports inside functions, underscore names of others) are in
layers.py. `python3 tests/layers_fw.py` prints every import from a higher layer, one a line.
"""
from pathlib import Path

import layers

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"

# bottom up: a module may import its own package and the layers below its own
LAYERS = ("hw", "storage", "snapshot", "lop", "scsi", "control", "endpoints", "main")
TOP = ("main", "factory")          # firmware/main.py and the factory tool: the top layer


def layer(name):
    # rank of a module's layer in LAYERS
    head = name.split(".")[0]
    return LAYERS.index("main" if head in TOP else head)


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


def upward_violations(root=FIRMWARE):
    paths = layers.modules(root, "")
    out = []
    for name, edges in sorted(layers.import_graph(root, "").items()):
        for target, line in sorted(edges.items(), key=lambda e: e[1]):
            if not may_import(name, target):
                out.append("%s:%d: %s imports %s (layer %s is above %s)"
                           % (paths[name], line, name, target, LAYERS[layer(target)], LAYERS[layer(name)]))
    return out


if __name__ == "__main__":
    print("\n".join(upward_violations()) or "no import from a higher layer")

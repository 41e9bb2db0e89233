"""mmrec_tf's modules import one another without circles (issue #12).

Every import counts, at module level or inside a function: a deferred import
only hides a circle until the day someone moves it. The graph is read from
the syntax trees, so no module is executed.
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "mmrec_tf"


def _module_names(package: pathlib.Path) -> dict[str, pathlib.Path]:
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph(package: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from pkg import submodule`` counts as the submodule)."""
    modules = _module_names(package)
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        home = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = home.split(".")[: len(home.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
                targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
            else:
                continue
            graph[name] |= {target for target in targets if target in modules and target not in (name, package.name)}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each back edge found by a depth-first search (empty when the graph is acyclic)."""
    circles, state, path = [], {}, []

    def visit(node):
        state[node], path[len(path):] = "open", [node]
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        state[node] = "done"
        path.pop()

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return circles


def test_the_package_has_no_import_circles():
    graph = import_graph(PACKAGE)
    assert "mmrec_tf.models.din" in graph["mmrec_tf.models"]  # the reader sees the package's real imports
    assert import_circles(graph) == []


def test_a_planted_circle_is_found(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    assert import_circles(import_graph(package)) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]

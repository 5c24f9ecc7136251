"""The import graph of src/inferplane read from the AST, and the rules the architecture map
states over it (docs/architecture.md, "Import directions").

Every import counts: top-level, inside functions, and under TYPE_CHECKING (a cycle hidden
there is still a cycle a reader has to hold in their head). `from a.b import c` is an edge to
`a.b.c` where that is a module, else to `a.b`.
"""

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = "inferplane"
Graph = Mapping[str, frozenset[str]]  # module -> the modules (of any package) it imports


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, frozenset[str]]:
    """Each module under `root` (a folder holding packages) -> what it imports."""
    paths = {module_name(root, path): path for path in sorted(root.rglob("*.py"))}
    return {name: frozenset(_imports(path, paths)) for name, path in paths.items()}


def _imports(path: Path, modules: Mapping[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def cycles(graph: Graph, prefix: str) -> list[list[str]]:
    """Strongly connected groups of more than one module (or a module importing itself)
    among the modules under `prefix` (Tarjan's algorithm, iterative)."""
    nodes = sorted(m for m in graph if within(m, prefix))
    edges = {m: sorted(t for t in graph[m] if t in graph and within(t, prefix)) for m in nodes}
    return [
        group
        for group in _components(nodes, edges)
        if len(group) > 1 or group[0] in edges[group[0]]
    ]


def _components(nodes: list[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    found.append(_pop_component(stack, on_stack, node))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(edges[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    group: list[str] = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        group.append(member)
        if member == root:
            return sorted(group)


@dataclass(frozen=True)
class Rule:
    """Modules under `package` may import, of `scope`, only what is under `allowed` (and
    the root package itself, which holds only the version)."""

    package: str
    allowed: tuple[str, ...]
    scope: str = "inferplane"

    def violations(self, graph: Graph) -> list[str]:
        return [
            f"{module} imports {target} ({self.package} may import only {', '.join(self.allowed)})"
            for module in sorted(graph)
            if within(module, self.package)
            for target in sorted(graph[module])
            if within(target, self.scope)
            and target != ROOT
            and not any(within(target, a) for a in self.allowed)
        ]


def closure(graph: Graph, starts: Iterable[str]) -> set[str]:
    """Every module reachable from `starts` through the graph (starts included)."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(graph.get(module, ()))
    return seen


def impure(graph: Graph, starts: Iterable[str], forbidden: Iterable[str]) -> list[str]:
    """The forbidden modules (I/O, clocks, web, torch) that `starts` reach, with who imports
    them."""
    reach = closure(graph, starts)
    banned = tuple(forbidden)
    return [
        f"{module} imports {target}"
        for module in sorted(reach & set(graph))
        for target in sorted(graph[module])
        if any(within(target, name) for name in banned)
    ]

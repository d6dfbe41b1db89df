#!/usr/bin/env python3
"""Figures of batchgen's layout, for comparing two commits of a restructuring.

    python scripts/layout_figures.py                 # this checkout
    python scripts/layout_figures.py /path/to/other  # another checkout (e.g. a `git worktree add` of an old commit)

Counts modules and lines outside the emulator, the import graph (its layers and the rooms it cycles
between), and the wiring the layout tests hold: attributes assigned from outside an object, tasks
started outside a TaskGroup, `RunLock(` sites, `backoff(` sites, `except aiohttp` sites, what the CLI
imports. Every import counts, in functions and TYPE_CHECKING blocks too.
"""

from __future__ import annotations

import ast
import statistics
import sys
from collections import defaultdict
from pathlib import Path

WIRES = {"apply_row", "queue_download", "session", "stream", "jobs_done", "head"}


def modules(package: Path) -> dict[str, ast.Module]:
    found = {}
    for path in sorted(package.rglob("*.py")):
        if "emulator" in path.relative_to(package).parts:
            continue
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def imports(tree: ast.Module, known: set[str]) -> set[str]:
    targets = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        targets.update(name for name in names if name in known)
    return targets


def components(edges: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []
    sys.setrecursionlimit(10000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            found.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layers(edges: dict[str, set[str]]) -> int:
    owner = {m: i for i, c in enumerate(components(edges)) for m in c}
    dag: dict[int, set[int]] = defaultdict(set)
    for a, targets in edges.items():
        dag[owner[a]].update(owner[b] for b in targets if owner[b] != owner[a])
    depth: dict[int, int] = {}

    def height(c: int) -> int:
        if c not in depth:
            depth[c] = 1 + max((height(t) for t in dag[c]), default=0)
        return depth[c]

    return max(height(c) for c in set(owner.values()))


def room(name: str) -> str:
    return ".".join(name.split(".")[:2])


def calls(tree: ast.Module, names: set[str]) -> int:
    return sum(
        1
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and (
            (isinstance(n.func, ast.Name) and n.func.id in names)
            or (isinstance(n.func, ast.Attribute) and n.func.attr in names)
        )
    )


def main(checkout: Path) -> None:
    package = checkout / "batchgen"
    mods = modules(package)
    known = set(mods)
    edges = {name: imports(tree, known) - {name} for name, tree in mods.items()}
    lines = sum(
        len((package.parent / (n.replace(".", "/") + ".py")).read_text().splitlines())
        if (package.parent / (n.replace(".", "/") + ".py")).exists()
        else len((package.parent / n.replace(".", "/") / "__init__.py").read_text().splitlines())
        for n in mods
    )
    rooms: dict[str, set[str]] = defaultdict(set)
    for a, targets in edges.items():
        rooms[room(a)].update(room(b) for b in targets if room(b) != room(a))
    for r in list(rooms):
        rooms[r].discard("batchgen")
    room_cycles = [sorted(c) for c in components(dict(rooms)) if len(c) > 1]
    lengths = [
        (f.end_lineno or f.lineno) - f.lineno + 1
        for tree in mods.values()
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    wired = stray = locks = backoffs = aiohttp_catch = 0
    for name, tree in mods.items():
        locks += calls(tree, {"RunLock"})
        if name != "batchgen.retry":
            backoffs += calls(tree, {"backoff"})
        for n in ast.walk(tree):
            if (
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr in {"create_task", "ensure_future"}
                and isinstance(n.func.value, ast.Name)
                and n.func.value.id == "asyncio"
            ):
                stray += 1
            if (
                isinstance(n, ast.ExceptHandler)
                and n.type is not None
                and "aiohttp." in ast.unparse(n.type)
                and not name.endswith(".api")
            ):
                aiohttp_catch += 1
            if isinstance(n, ast.Assign):
                for t in n.targets:
                    if (
                        isinstance(t, ast.Attribute)
                        and not (isinstance(t.value, ast.Name) and t.value.id in {"self", "cls"})
                        and (t.attr.startswith("on_") or t.attr in WIRES)
                    ):
                        wired += 1
    cli_imports = {
        b
        for a, t in edges.items()
        if a.startswith("batchgen.cli")
        for b in t
        if not b.startswith("batchgen.cli")
    }
    print(f"modules outside the emulator      {len(mods)}")
    print(f"  at the package root             {len(list(package.glob('*.py')))}")
    print(f"lines outside the emulator        {lines}")
    print(f"import graph layers               {layers(edges)}")
    print(f"module cycles (components > 1)    {sum(1 for c in components(edges) if len(c) > 1)}")
    print(f"cycles between rooms              {room_cycles or 0}")
    print(f"functions: median / max lines     {statistics.median(lengths):.0f} / {max(lengths)}")
    print(f"  over 60 lines                   {sum(1 for n in lengths if n > 60)}")
    print(f"stages wired after construction   {wired}")
    print(f"tasks outside a TaskGroup         {stray}")
    print(f"RunLock( call sites               {locks}")
    print(f"backoff( outside retry.py         {backoffs}")
    print(f"except aiohttp outside the mapper {aiohttp_catch}")
    print(f"modules the CLI imports           {len(cli_imports)} of {len(mods)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)

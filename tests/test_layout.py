"""The package layout: reading a manifest stays light, modules stay small, and imports never go round."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "batchgen"
MAX_LINES = 450
#: Modules being restructured elsewhere, still over MAX_LINES. This list only shrinks: remove a
#: module from it once it has been split.
OVERSIZED: set[str] = set()  # modules being split may be listed here; this list only shrinks

_PROBE = """
import json, sys
import batchgen.manifest
imported = set(sys.modules)
from batchgen.manifest import load_manifest
load_manifest(sys.argv[1])
loaded = set(sys.modules)
print(json.dumps({"import": sorted(imported), "load": sorted(loaded)}))
"""


def test_reading_a_manifest_does_not_load_the_request_validator(tmp_path: Path) -> None:
    """Importing batchgen.manifest loads neither jsonschema nor batchgen.registry; loading a manifest
    then uses jsonschema for the manifest's own schema, but still not the request validator."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nname: probe\nmodel: m\njobs: [{name: a, prompt: x}]\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(manifest)], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(done.stdout)
    on_import = set(modules["import"])
    assert "batchgen.manifest.model" in on_import
    assert not {m for m in on_import if m == "jsonschema" or m.startswith("jsonschema.")}
    for loaded in (on_import, set(modules["load"])):
        assert not {m for m in loaded if m.startswith(("batchgen.registry", "batchgen.planning"))}
        assert not {"batchgen.runner", "batchgen.api", "aiohttp"} & loaded


_PLAN_PROBE = """
import contextlib, io, json, sys
from batchgen.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(["plan", sys.argv[1]])
print(json.dumps({"code": code, "loaded": sorted(sys.modules)}))
"""


def test_plan_does_not_load_the_run_machinery() -> None:
    """`batchgen plan` (offline) plans; it does not import the runner, the downloads or the library
    facade that a run needs (each costs start-up time on a command people run often)."""
    demo = PACKAGE.parent / "jobs" / "demo.yaml"
    done = subprocess.run(
        [sys.executable, "-c", _PLAN_PROBE, str(demo)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "OXEN_API_KEY"},
    )
    result = json.loads(done.stdout)
    assert result["code"] == 0
    run_machinery = {"batchgen.batch", "batchgen.runner", "batchgen.fetcher", "batchgen.live_cancel"}
    assert not run_machinery & set(result["loaded"])


def test_modules_stay_small() -> None:
    """No module outside batchgen/emulator/ is over MAX_LINES lines, except those listed in OVERSIZED."""
    sizes = {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
        if "emulator" not in path.relative_to(PACKAGE).parts
    }
    assert set(sizes) >= OVERSIZED, "an exempt module no longer exists: take it off the list"
    assert all(sizes[name] > MAX_LINES for name in OVERSIZED), (
        "an exempt module fits now: take it off the list"
    )
    too_big = {name: lines for name, lines in sizes.items() if lines > MAX_LINES and name not in OVERSIZED}
    assert too_big == {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_at_load(tree: ast.Module) -> list[str]:
    """Modules imported when the module itself is imported (not in functions or TYPE_CHECKING blocks)."""
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_import_cycles() -> None:
    """Module-level imports inside batchgen form no cycle (importing a.b.c runs a.b's __init__ too)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for imported in _imports_at_load(ast.parse(path.read_text(encoding="utf-8"))):
            parts = imported.split(".")
            for end in range(2, len(parts) + 1):  # the module and every package on the way to it
                target = ".".join(parts[:end])
                if target in modules and target != name and not name.startswith(target + "."):
                    targets.add(target)
        edges[name] = targets
    cycles = _cycles(edges)
    assert cycles == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found

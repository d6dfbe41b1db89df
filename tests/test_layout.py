"""The package layout: reading a manifest stays light, modules stay small, and imports never go round."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
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
        assert not {"batchgen.run.runner", "batchgen.client.api", "aiohttp"} & loaded


_PLAN_PROBE = """
import contextlib, io, json, sys
from batchgen.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(["plan", sys.argv[1]])
print(json.dumps({"code": code, "loaded": sorted(sys.modules)}))
"""


def test_plan_does_not_load_the_run_machinery(tmp_path: Path) -> None:
    """`batchgen plan` (offline) plans; it does not import the runner, the downloads or the library
    facade that a run needs (each costs start-up time on a command people run often)."""
    demo = PACKAGE.parent / "jobs" / "demo.yaml"
    code, loaded = _loaded(_PLAN_PROBE, tmp_path, str(demo))
    assert code == 0
    run_machinery = {
        "batchgen.run.batch",
        "batchgen.run.runner",
        "batchgen.run.fetcher",
        "batchgen.run.live_cancel",
    }
    assert not run_machinery & loaded


_HELP_PROBE = """
import contextlib, io, json, sys
from batchgen.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(["--help"])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "loaded": sorted(sys.modules)}))
"""


def _loaded(probe: str, cwd: Path, *args: str) -> tuple[object, set[str]]:
    """The exit code and the modules loaded by `probe` run in a fresh interpreter in `cwd`, without a
    key."""
    done = subprocess.run(
        [sys.executable, "-c", probe, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "OXEN_API_KEY"},
    )
    result = json.loads(done.stdout)
    return result["code"], set(result["loaded"])


def _of(loaded: set[str], packages: tuple[str, ...]) -> set[str]:
    return {m for m in loaded if any(m == p or m.startswith(p + ".") for p in packages)}


def test_help_imports_neither_the_event_loop_nor_the_libraries_commands_use(tmp_path: Path) -> None:
    """`batchgen --help` only builds the parser: no asyncio, aiohttp, jsonschema, yaml or tqdm (issue 19:
    the help starts as fast as Python allows)."""
    code, loaded = _loaded(_HELP_PROBE, tmp_path)
    assert code == 0
    assert not _of(loaded, ("asyncio", "aiohttp", "jsonschema", "yaml", "tqdm"))


def test_an_offline_plan_imports_no_http_stack_progress_bar_emulator_journal_or_run_engine(
    tmp_path: Path,
) -> None:
    """An offline `batchgen plan` of jobs/demo.yaml with no run directory yet loads no aiohttp, tqdm,
    emulator, journal (sqlite3) or event loop (asyncio), and of the run engine only the scheduler's pure
    decisions, which the budget line replays so that `plan` and `run` agree (demo.yaml has a budget)."""
    demo = PACKAGE.parent / "jobs" / "demo.yaml"
    code, loaded = _loaded(_PLAN_PROBE, tmp_path, str(demo))  # in tmp_path: no outputs/ run directory
    assert code == 0
    assert not _of(loaded, ("aiohttp", "tqdm", "batchgen.emulator", "sqlite3", "_sqlite3", "asyncio"))
    assert _of(loaded, ("batchgen.run",)) <= {"batchgen.run", "batchgen.run.scheduler"}


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


# -- the rooms: packages by the life of a job ---------------------------------------------------------

#: Modules at the package root that are not leaves: the facade, the entry point and the library commands.
FACADE = {"batchgen", "batchgen.__main__", "batchgen.commands"}
MAX_ROOT_MODULES = 14
MAX_FUNCTION_LINES = 60


def _client_modules() -> dict[str, Path]:
    return {
        _module_name(p): p for p in PACKAGE.rglob("*.py") if "emulator" not in p.relative_to(PACKAGE).parts
    }


def _all_imports(tree: ast.AST) -> list[str]:
    """Every batchgen module a module imports, wherever the import is (functions, TYPE_CHECKING too)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return [name for name in found if name == "batchgen" or name.startswith("batchgen.")]


def _room(module: str) -> str:
    """The top-level package a module lives in, or the module itself at the root."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _room_edges() -> dict[str, set[str]]:
    modules = _client_modules()
    edges: dict[str, set[str]] = {_room(name): set() for name in modules}
    for name, path in modules.items():
        for imported in _all_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if imported in modules and _room(imported) != _room(name):
                edges[_room(name)].add(_room(imported))
    return edges


def test_the_package_root_holds_few_modules() -> None:
    """At most MAX_ROOT_MODULES modules sit at the package root; everything else is in a room."""
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


def test_rooms_import_each_other_in_one_direction() -> None:
    """No cycle between top-level packages (imports in functions and TYPE_CHECKING blocks count:
    they are the same dependency, only later)."""
    edges = _room_edges()
    edges = {room: targets - FACADE for room, targets in edges.items() if room not in FACADE}
    assert _cycles(edges) == []


def test_root_modules_are_leaves() -> None:
    """A root module (other than the facade) imports no package of batchgen, only other leaves."""
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    leaking = {
        room: sorted(t for t in targets if t.split(".")[1] in packages)
        for room, targets in _room_edges().items()
        if room not in FACADE and room.split(".")[1] not in packages
    }
    assert {room: targets for room, targets in leaking.items() if targets} == {}


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_functions_stay_short() -> None:
    """No function over MAX_FUNCTION_LINES lines outside the emulator, except argparse builders
    (`add_*` in cli/, which are a list of flags)."""
    long = []
    for name, path in _client_modules().items():
        for function in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            lines = (function.end_lineno or function.lineno) - function.lineno + 1
            builder = name.startswith("batchgen.cli") and function.name.startswith("add_")
            if lines > MAX_FUNCTION_LINES and not builder:
                long.append(f"{name}.{function.name}: {lines}")
    assert long == []


def _calls(tree: ast.AST, names: set[str]) -> list[int]:
    """Lines of calls to a function or method whose name is in `names`."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id in names)
            or (isinstance(node.func, ast.Attribute) and node.func.attr in names)
        )
    ]


def _where_called(names: set[str]) -> set[str]:
    return {
        name
        for name, path in _client_modules().items()
        if _calls(ast.parse(path.read_text(encoding="utf-8")), names)
    }


def test_one_module_locks_a_run_directory() -> None:
    """`RunLock(` is called in one module: the session every command opens a run directory through."""
    assert len(_where_called({"RunLock"})) <= 1, _where_called({"RunLock"})


#: The ways into the journal's SQLite file.
JOURNAL_OPENERS = {"sqlite3.connect", "Journal.open", "Journal.open_existing", "cls.open"}


def test_the_journal_is_opened_in_two_modules() -> None:
    """The journal's file is opened by the store (read-write, or read-only for readers) and the store is
    opened by the session: no third way into the SQLite file (a raw connection, a reader of its own)."""
    opening = {
        name
        for name, path in _client_modules().items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and ast.unparse(node.func) in JOURNAL_OPENERS
    }
    assert opening <= {"batchgen.journal.store", "batchgen.journal.session"}, opening


def _checks_the_api(tree: ast.AST) -> bool:
    """Records a run directory's API (`stamp_api`, `set_meta("api", …)`) or refuses a command because of
    it (a `raise` under a test of SANDBOX_IDENTITY or of the recorded `meta("api")`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            first = node.args[0] if node.args else None
            meta_api = (
                node.func.attr == "set_meta" and isinstance(first, ast.Constant) and first.value == "api"
            )
            if node.func.attr == "stamp_api" or meta_api:
                return True
        if isinstance(node, ast.If) and any(isinstance(n, ast.Raise) for n in ast.walk(node)):
            test = ast.unparse(node.test)
            if "SANDBOX_IDENTITY" in test or "meta('api')" in test:
                return True
    return False


def test_one_module_checks_the_api_identity() -> None:
    """A run directory holds the results of one API (the sandbox's, or one origin's): the session alone
    records it and refuses a command that would mix them (run, deliver, cancel all go through it)."""
    checking = {
        name
        for name, path in _client_modules().items()
        if _checks_the_api(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert checking == {"batchgen.journal.session"}, checking


#: What the command line may import: the library's surface, the leaves it parses into, and itself.
CLI_MAY_IMPORT = {"batchgen", "batchgen.commands", "batchgen.errors", "batchgen.config", "batchgen.states"}


def _imported_module(name: str, modules: set[str]) -> str:
    """The module an imported name lives in (`batchgen.commands.run_status` -> `batchgen.commands`)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def test_the_command_line_imports_only_the_library_surface() -> None:
    """`cli/*.py` imports `batchgen`, `batchgen.commands`, `errors`, `config`, `states` and itself; what
    it needs of deeper modules comes through `batchgen.commands`. The emulator is imported only inside
    the functions of `--sandbox` and `batchgen emulator`, so `batchgen --help` stays light."""
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    reaching = {}
    for name, path in _client_modules().items():
        if name.split(".")[:2] != ["batchgen", "cli"]:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {_imported_module(n, modules) for n in _all_imports(tree)}
        at_load = {_imported_module(n, modules) for n in _imports_at_load(tree) if n.startswith("batchgen")}
        beyond = {
            m
            for m in imported
            if m not in CLI_MAY_IMPORT
            and m.split(".")[:2] not in (["batchgen", "cli"], ["batchgen", "emulator"])
        }
        beyond |= {m for m in at_load if m.startswith("batchgen.emulator")}
        if beyond:
            reaching[name] = sorted(beyond)
    assert reaching == {}


def test_backoff_is_computed_only_by_the_retry_policy() -> None:
    """`backoff(` is called only inside batchgen/retry.py; loops that wait iterate `retry.attempts()`."""
    assert _where_called({"backoff"}) <= {"batchgen.retry"}


#: The waits that retry nothing, by module:function. Every other wait in batchgen is a retry loop's,
#: done by `retry.attempts()`: no other function awaits a sleep of its own.
NOT_RETRIES = {
    "batchgen.client.api:wait_clear": "the shared pause a 429 sets, which every API call waits out",
    "batchgen.run.live_cancel:run": "the poll for a `batchgen cancel` request file",
    "batchgen.run.runner:_stop_when": "the drain's time limit",
    "batchgen.journal.outbox:look_for": "the settle wait before a second look for a lost enqueue or commit",
}


def _awaits_a_sleep(function: ast.AsyncFunctionDef | ast.FunctionDef) -> bool:
    """`await asyncio.sleep(...)`, `await self._sleep(...)`, `await ctx.sleep(...)` in `function`'s own
    body (nested functions are checked on their own)."""
    todo: list[ast.AST] = list(function.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
            func = node.value.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name.lstrip("_") == "sleep":
                return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return False


def test_every_wait_between_tries_is_the_retry_loops() -> None:
    """A loop that sleeps between tries iterates `retry.attempts()`, which does the sleeping: outside
    batchgen/retry.py only the waits of NOT_RETRIES (which try nothing again) await a sleep, so no
    retry loop waits by itself, nor through a helper of its own."""
    sleeping = {
        f"{name}:{function.name}"
        for name, path in _client_modules().items()
        if name != "batchgen.retry"
        for function in _functions(ast.parse(path.read_text(encoding="utf-8")))
        if _awaits_a_sleep(function)
    }
    assert sleeping - set(NOT_RETRIES) == set()
    assert set(NOT_RETRIES) - sleeping == set()  # a wait that is gone leaves the list too


def test_tasks_are_started_only_inside_a_task_group() -> None:
    """No `asyncio.create_task`/`ensure_future`: every task belongs to a TaskGroup, so none outlives
    its run or loses its exception."""
    stray = set()
    for name, path in _client_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"create_task", "ensure_future"}
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "asyncio"
            ):
                stray.add(f"{name}:{node.lineno}")
    assert stray == set()


def _excepts_aiohttp(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type and "aiohttp." in ast.unparse(node.type):
            lines.append(node.lineno)
    return lines


def test_aiohttp_errors_are_caught_in_one_place() -> None:
    """`except aiohttp.…` appears only in the client's error mapper (batchgen/client/api.py); the rest
    of batchgen sees batchgen's own errors."""
    catching = {
        name
        for name, path in _client_modules().items()
        if _excepts_aiohttp(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert catching <= {"batchgen.client.api"}


#: The errors of one request (`batchgen.errors`): an `except` of any of them is about that request.
API_ERRORS = re.compile(r"\b(ApiError|ApiStatusError|TransportError|ResponseLost|NotFound)\b")


def test_a_wrong_key_is_never_let_through_by_hand() -> None:
    """Unauthenticated is no ApiError, so no `except ApiError` (or subclass) has to re-raise it: no
    `except Unauthenticated: raise`, and no handler of an API error that names Unauthenticated."""
    from batchgen.errors import ApiError, Unauthenticated

    assert not issubclass(Unauthenticated, ApiError)
    by_hand = []
    for name, path in _client_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ExceptHandler) or node.type is None:
                continue
            caught = ast.unparse(node.type)
            body = "\n".join(ast.unparse(statement) for statement in node.body)
            bare_reraise = caught == "Unauthenticated" and body == "raise"
            if bare_reraise or (API_ERRORS.search(caught) and "Unauthenticated" in body):
                by_hand.append(f"{name}:{node.lineno}")
    assert by_hand == []


#: Attribute names that wire one stage to another when assigned from outside the object.
WIRES = {"apply_row", "queue_download", "session", "stream", "jobs_done", "head"}


def test_stages_are_not_wired_after_construction() -> None:
    """No stage is plugged into another by assigning its attributes after construction (`x.on_change =`,
    `ctx.apply_row =`, `fetcher.session =` ...): hand-offs are constructor arguments, queues and return
    values, so "go to definition" follows a generation."""
    wired = []
    for name, path in _client_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Assign | ast.AnnAssign):
                continue
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if not isinstance(target, ast.Attribute):
                    continue
                own = isinstance(target.value, ast.Name) and target.value.id in {"self", "cls"}
                if not own and (target.attr.startswith("on_") or target.attr in WIRES):
                    wired.append(f"{name}:{node.lineno}: {ast.unparse(target)}")
    assert wired == []


OUTBOX = "batchgen.journal.outbox"


def _settle_waits(tree: ast.AST) -> list[int]:
    """Lines that add a multiple of the request timeout to something: when a request is settled."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add)
        and any(
            isinstance(side, ast.BinOp) and isinstance(side.op, ast.Mult) and "request_s" in ast.unparse(side)
            for side in (node.left, node.right)
        )
    ]


def test_one_outbox_sends_submissions_and_commits_and_alone_writes_the_settle_wait() -> None:
    """Submission and delivery's commits (reference images' too) send through the one at-most-once
    outbox, and the settle wait (a send time plus a multiple of the request timeout) is written once,
    in it."""
    modules = _client_modules()
    for user in ("batchgen.run.submitter", "batchgen.sinks.oxen.commit_once"):
        assert OUTBOX in _all_imports(ast.parse(modules[user].read_text(encoding="utf-8"))), user
    waits = [
        f"{name}:{line}"
        for name, path in modules.items()
        for line in _settle_waits(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert len(waits) == 1 and waits[0].startswith(f"{OUTBOX}:"), waits


# -- one of each: constants written once, dependencies that are used, tests that say what they hold ----

#: Literals that each say one thing, so batchgen (outside the emulator) writes each of them once.
WRITTEN_ONCE = {
    r"\{\{|\}\}|\{([^{}]*)\}|\{|\}": "the template syntax's tokens (batchgen.target.TEMPLATE_TOKEN)",
    "batchgen@users.noreply.oxen.ai": "the author batchgen writes to Oxen as (batchgen.client.api.AUTHOR)",
}


def test_the_template_regex_and_the_author_are_written_once() -> None:
    """The template tokens' regex and the author batchgen commits as are each one constant in batchgen."""
    found = dict.fromkeys(WRITTEN_ONCE, 0)
    for path in _client_modules().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in found:
                found[node.value] += 1
    assert found == dict.fromkeys(WRITTEN_ONCE, 1)


def test_a_429_without_retry_after_waits_the_one_default() -> None:
    """Wherever a missing Retry-After is replaced by a wait, it is DEFAULT_RETRY_AFTER_S (through
    `RateLimited.wait_s`), never a number written in place."""
    literal = [
        f"{name}:{node.lineno}"
        for name, path in _client_modules().items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.IfExp)
        and "retry_after" in ast.unparse(node.body)
        and isinstance(node.orelse, ast.Constant)
    ]
    assert literal == []


#: Distributions whose import name differs from the name pyproject.toml declares.
IMPORT_NAMES = {"pyyaml": "yaml"}


def test_every_declared_dependency_is_imported() -> None:
    """Each runtime dependency in pyproject.toml is imported by batchgen (one that nothing imports is
    dead weight for every install)."""
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {
        IMPORT_NAMES.get(name, name)
        for name in (
            re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower() for spec in project["dependencies"]
        )
    }
    imported = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert declared - imported == set()


def test_every_test_says_what_it_holds() -> None:
    """Every `def test_...` under tests/ has a docstring."""
    tests = PACKAGE.parent / "tests"
    bare = [
        f"{path.relative_to(tests)}:{function.lineno} {function.name}"
        for path in sorted(tests.rglob("*.py"))
        for function in _functions(ast.parse(path.read_text(encoding="utf-8")))
        if function.name.startswith("test_") and ast.get_docstring(function) is None
    ]
    assert bare == []

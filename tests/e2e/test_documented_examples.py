"""Every documented `batchgen` example runs: each command example of README.md, docs/*.md and every
subcommand's `--help`, against an emulator on 127.0.0.1, in a temporary directory holding a copy of
the repository's jobs/.

What counts as an example is read from the text, so a new one is picked up by itself:

- in Markdown, a line of a fenced `bash`, `sh`, `shell`, `console` or `text` block (or one with no
  language) that runs `batchgen SUBCOMMAND`: at its start (after an optional `$ ` prompt and
  `VAR=value` assignments) or after `&&`;
- in a `--help` text, an indented line that does so, also after `then: `.

Each runs as a reader would paste it: in bash with `pipefail`, `batchgen` on the PATH, OXEN_API_BASE
and OXEN_API_KEY naming an emulator that holds the repositories the docs upload and deliver to,
BROWSER=true (for `--open`), and the emulator's default address `http://127.0.0.1:8765` standing for
that emulator. The examples of one file (a `--help` page is a file) run in document order, each
file in its own directory; files run in parallel. A file whose examples run `batchgen run` has an
emulator of its own (its runs deliver); the others share one. An example that reads a run directory
no earlier example of its file made (`outputs/NAME`, `outputs/NAME.sandbox`, or `outputs` itself)
gets a copy of the one `batchgen run jobs/NAME.yaml` (`--sandbox` for a `.sandbox` one; for
`outputs` alone, the README's campaign, jobs/spring-campaign.yaml) made on its emulator, once.

Examples that install (`pip install`), start a server (`batchgen emulator`), benchmark
(`benchmarks/`) or need a real key (the marker `[help only]` in the line, e.g. in its comment) are
not run: their subcommand's `--help` must exit 0 and list every `--flag` they use.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batchgen.cli import build_parser
from batchgen.emulator import Emulator
from tests.e2e.conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console", "text"}
DEFAULT_EMULATOR = "http://127.0.0.1:8765"
#: Repositories the documented manifests and commands upload and deliver to: (namespace, name, branch).
REPOSITORIES = [
    ("meadow", "campaigns", "main"),
    ("meadow", "spring-campaign-assets", "main"),
    ("meadow", "review", "drafts"),
]
HELP_ONLY = [
    (re.compile(r"\bpip install\b"), "installs"),
    (re.compile(r"\bbatchgen emulator\b"), "starts a server"),
    (re.compile(r"\bbenchmarks/"), "benchmarks"),
    (re.compile(r"\[help only\]"), "marked [help only]"),
]
_INVOCATION = re.compile(
    r"(?:^\s*(?:\$\s+)?|&&\s*|then:\s+)((?:[A-Z_][A-Z0-9_]*=\S+\s+)*batchgen\s+[a-z].*)$"
)
_RUN_DIR = re.compile(r"^outputs(?:/([\w.-]+?)(\.sandbox)?)?/?$")
_SHELL_OPERATORS = set("|&;<>()")
EXAMPLE_LIMIT_S = 60


@dataclass(frozen=True)
class Example:
    """One documented command: where it is written, the line as written, and what to run."""

    source: str  # README.md, docs/report.md, `batchgen run --help`
    line: int
    text: str  # the line as written
    command: str  # from `batchgen` (or the VAR=value before it) on: what runs in bash

    @property
    def words(self) -> list[str]:
        """The batchgen command's words, up to the first shell operator (a pipe, a redirection...)."""
        lexer = shlex.shlex(self.command, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        words = list(lexer)
        start = words.index("batchgen") + 1
        end = next((i for i, w in enumerate(words) if i >= start and set(w) <= _SHELL_OPERATORS), len(words))
        if end < len(words) and words[end][0] in "<>" and words[end - 1].isdigit():
            end -= 1  # the descriptor of a redirection (`2>>log`)
        return words[start:end]

    @property
    def subcommand(self) -> str:
        return self.words[0]

    @property
    def help_only(self) -> str | None:
        """Why the example is checked with `--help` only, or None when it runs."""
        return next((why for pattern, why in HELP_ONLY if pattern.search(self.text)), None)

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.text.strip()}"


def markdown_examples(path: Path) -> Iterator[Example]:
    """The example lines of a Markdown file's shell and text code blocks."""
    language: str | None = None
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        fence = line.strip()
        if fence.startswith("```"):
            language = fence[3:].strip() if language is None else None
            continue
        found = _INVOCATION.search(line) if language in SHELL_BLOCKS else None
        if found:
            yield Example(path.relative_to(ROOT).as_posix(), number, line, found.group(1))


def help_pages() -> dict[str, str]:
    """`batchgen --help` and each subcommand's, as printed (emulator flags included)."""
    parser = build_parser(emulator=True)
    pages = {"batchgen --help": parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                pages[f"batchgen {name} --help"] = sub.format_help()
    return pages


def help_examples(source: str, page: str) -> Iterator[Example]:
    """The example lines of one help page (indented lines that run `batchgen`)."""
    for number, line in enumerate(page.splitlines(), 1):
        found = _INVOCATION.search(line) if line.startswith(" ") else None
        if found:
            yield Example(source, number, line, found.group(1))


def all_examples() -> dict[str, list[Example]]:
    """Every documented example, by the file (or help page) it is written in."""
    found = {path.relative_to(ROOT).as_posix(): list(markdown_examples(path)) for path in DOCS}
    found.update({source: list(help_examples(source, page)) for source, page in help_pages().items()})
    return {source: examples for source, examples in found.items() if examples}


def test_examples_are_found_in_the_readme_the_docs_and_every_help_page() -> None:
    """The collector finds the examples where they are written: the README's first run and its
    `--only` lines, docs/report.md and docs/manifest.md, an example in each subcommand's `--help`;
    output lines (`batchgen: …`), prose and Python blocks are not examples; install and server lines
    are checked with `--help` only."""
    found = all_examples()
    readme = {e.command.split("#")[0].strip() for e in found["README.md"]}
    assert {
        "batchgen run jobs/demo.yaml --sandbox",
        "batchgen plan jobs/spring-campaign.yaml --only product=tote",
        "batchgen status outputs/spring-campaign",
    } <= readme
    assert not any(e.command.startswith("batchgen:") for examples in found.values() for e in examples)
    assert {"docs/report.md", "docs/manifest.md"} <= set(found)
    for name in ("run", "plan", "status", "cancel", "unverified", "ls", "deliver", "report", "schema"):
        assert found[f"batchgen {name} --help"], name
    help_only = {e.text.strip(): e.help_only for examples in found.values() for e in examples if e.help_only}
    assert help_only == {
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && batchgen run jobs/demo.yaml "
        "--sandbox": "installs",
        "batchgen emulator --port 8765 --time-scale 0.01": "starts a server",
        "batchgen run jobs/spring-campaign.yaml --notify \"mail -s 'spring campaign' producer@example.com\"  "
        "# [help only]: sends mail": "marked [help only]",
    }


@dataclass(frozen=True)
class Failure:
    example: Example
    code: int | None
    output: str

    def __str__(self) -> str:
        tail = "\n".join(self.output.strip().splitlines()[-12:])
        return f"{self.example}\n  exited {self.code}:\n{tail}"


class Hub:
    """An emulator holding the documented repositories, the environment examples run in against it,
    and the run directories made on it, each once, for the files that read one they did not make."""

    def __init__(self, emu: Emulator, root: Path, shim: Path) -> None:
        self.emu, self.root = emu, root
        self.env = clean_env(
            OXEN_API_BASE=emu.base_url,
            OXEN_API_KEY=emu.api_key,
            BROWSER="true",
            PATH=f"{shim}:{clean_env().get('PATH', '')}",
        )
        self.made: dict[str, asyncio.Task[tuple[Path | None, str]]] = {}
        for namespace, name, branch in REPOSITORIES:
            emu.create_repo(namespace, name)
            emu.state.repos.commit(namespace, name, branch, {}, message="init", author="a", email="e")

    async def shell(self, command: str, cwd: Path) -> tuple[int | None, str]:
        """Run `command` in bash (`pipefail`) in `cwd`: its exit code (None: too slow) and output."""
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-o",
            "pipefail",
            "-c",
            command.replace(DEFAULT_EMULATOR, self.emu.base_url),
            cwd=cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(EXAMPLE_LIMIT_S):
                out, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None, f"still running after {EXAMPLE_LIMIT_S} s"
        return proc.returncode, out.decode(errors="replace")

    def run_dir(self, name: str, sandbox: bool) -> asyncio.Task[tuple[Path | None, str]]:
        """The run directory `batchgen run jobs/NAME.yaml [--sandbox]` makes here (None, and why, if
        it fails), made by the first file that asks for it."""
        command = f"batchgen run jobs/{name}.yaml" + (" --sandbox" if sandbox else "")
        if command not in self.made:
            self.made[command] = asyncio.create_task(
                self._make(command, f"outputs/{name}" + ".sandbox" * sandbox)
            )
        return self.made[command]

    async def _make(self, command: str, run_dir: str) -> tuple[Path | None, str]:
        where = self.root / f"made-{len(self.made)}"
        shutil.copytree(ROOT / "jobs", where / "jobs")
        code, output = await self.shell(command, where)
        return (where / run_dir if code == 0 else None), f"(making it first: {command})\n{output}"


class Reader:
    """Runs the examples of one file, in order, in its own directory (a copy of jobs/)."""

    def __init__(self, root: Path, hub: Hub) -> None:
        self.root, self.hub = root, hub
        shutil.copytree(ROOT / "jobs", root / "jobs")

    async def run(self, example: Example) -> Failure | None:
        if example.help_only:
            return await self.check_help(example)
        for word in example.words:
            found = _RUN_DIR.match(word)
            if found is not None and not (self.root / word).exists():
                name, sandbox = found.group(1) or "spring-campaign", bool(found.group(2))
                made, output = await self.hub.run_dir(name, sandbox)
                if made is None:
                    return Failure(example, 1, output)
                shutil.copytree(made, self.root / "outputs" / made.name)
        code, output = await self.hub.shell(example.command, self.root)
        return None if code == 0 else Failure(example, code, output)

    async def check_help(self, example: Example) -> Failure | None:
        code, output = await self.hub.shell(f"batchgen {example.subcommand} --help", self.root)
        flags = [w.split("=")[0] for w in example.words if w.startswith("--")]
        missing = [flag for flag in flags if flag not in output]
        if code == 0 and not missing:
            return None
        return Failure(
            example, code, f"(help only, {example.help_only}) flags not in --help: {missing}\n{output}"
        )


async def read_in_order(reader: Reader, examples: list[Example]) -> list[Failure]:
    """The examples of one file, in document order; after a failure, the rest of the file still runs."""
    failures = []
    for example in examples:
        failure = await reader.run(example)
        if failure is not None:
            failures.append(failure)
    return failures


def runs_campaigns(examples: list[Example]) -> bool:
    """Whether a file's examples run `batchgen run` (and so deliver to the documented repositories)."""
    return any(e.subcommand == "run" and not e.help_only for e in examples)


@pytest.mark.timeout(180)
async def test_every_documented_example_runs(emulator: Callable[..., Any], tmp_path: Path) -> None:
    """Every example of README.md, docs/*.md and each `--help` exits 0 (run in document order per
    file, files in parallel); one that installs, starts a server, benchmarks or needs a real key has
    its subcommand's `--help` checked instead. A file that runs campaigns has an emulator of its own;
    the others share one, and the run directories they read are made on it once. A failure names the
    file, the line and the command."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "batchgen").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m batchgen "$@"\n')
    (shim / "batchgen").chmod(0o755)
    shared = Hub(await emulator(), tmp_path / "shared", shim)
    readers = []
    for i, examples in enumerate(all_examples().values()):
        hub = Hub(await emulator(), tmp_path / f"own-{i}", shim) if runs_campaigns(examples) else shared
        readers.append(read_in_order(Reader(tmp_path / f"reader-{i}", hub), examples))
    async with asyncio.timeout(150):
        failures = [failure for found in await asyncio.gather(*readers) for failure in found]
    assert not failures, "documented examples that do not run:\n\n" + "\n\n".join(map(str, failures))

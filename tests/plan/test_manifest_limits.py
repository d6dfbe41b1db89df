"""Hostile manifests and the files they name: refused as located problems, never a hang or a crash.

The alias bomb and deep nesting cases live in the bad corpus (tests/plan/bad/); here are the cases
that need a special file (a FIFO, /dev/zero) or a shrunken limit.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from batchgen import manifest as manifest_module
from batchgen.errors import ManifestError
from batchgen.manifest import assets as assets_module
from batchgen.manifest import load_manifest, yaml_tree
from batchgen.manifest import rows as rows_module
from tests.plan.conftest import HEADER, Workspace, tiny_png

JOB = "jobs: [{name: a, prompt: x}]\n"


@pytest.fixture
def memory_ceiling() -> Iterator[None]:
    """Caps the address space at 1 GiB above today's for the test, so a regression that reads an
    endless file fails with MemoryError quickly instead of dragging the machine into swap."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    status = Path("/proc/self/status").read_text()
    in_use = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (in_use + 2**30, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def problems_within(path: Path, seconds: float = 10.0) -> list[str]:
    """The problems of loading `path`, from a thread that must finish within `seconds`.

    A load blocked opening a FIFO is released (a writer is opened and closed) before failing.
    """
    found: list[str] = []

    def load() -> None:
        try:
            load_manifest(path, file=path.name)
        except ManifestError as exc:
            found.extend(str(p).replace(str(path.parent) + os.sep, "") for p in exc.problems)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in path.parent.iterdir():
            if fifo.is_fifo():
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(seconds)
        pytest.fail(f"loading {path.name} did not finish within {seconds} s")
    return found


def test_a_manifest_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO given as the manifest is refused without opening it for a blocking read."""
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    assert problems_within(fifo) == [
        "m.yaml: the manifest is a FIFO (named pipe), not a regular file\n"
        "    hint: give the path of a manifest file"
    ]


def test_rows_and_an_asset_that_are_fifos_are_refused_at_once(ws: Workspace) -> None:
    """A FIFO named by `rows:` or as a local asset is a located problem, and nothing blocks."""
    os.mkfifo(ws.root / "rows.csv")
    os.mkfifo(ws.root / "mug.png")
    path = ws.write(HEADER + "rows: rows.csv\nassets: {mug: mug.png}\n" + JOB)
    assert problems_within(path) == [
        "m.yaml:4:7: rows: CSV file 'rows.csv' is a FIFO (named pipe), not a regular file",
        "m.yaml:5:15: assets.mug: asset file 'mug.png' is a FIFO (named pipe), not an image file",
    ]


def test_dev_zero_as_rows_or_asset_is_refused_without_reading_it(ws: Workspace, memory_ceiling: None) -> None:
    """/dev/zero (endless, and size 0 to stat) as a CSV or an image is refused as a character device."""
    path = ws.write(HEADER + "rows: /dev/zero\nassets: {z: /dev/zero}\n" + JOB)
    assert problems_within(path) == [
        "m.yaml:4:7: rows: CSV file '/dev/zero' is a character device, not a regular file",
        "m.yaml:5:13: assets.z: asset file '/dev/zero' is a character device, not an image file",
    ]


def test_dev_zero_as_the_manifest_is_refused(memory_ceiling: None) -> None:
    """/dev/zero given as the manifest itself is one problem, read for 0 bytes."""
    with pytest.raises(ManifestError) as caught:
        load_manifest("/dev/zero")
    assert str(caught.value).startswith("/dev/zero: the manifest is a character device, not a regular file")


def test_files_over_their_size_limit_are_refused(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A manifest, rows CSV or asset over its limit is a problem saying the size and the limit."""
    png = tiny_png() + bytes(200)
    monkeypatch.setattr(rows_module, "MAX_ROWS_BYTES", 10)
    monkeypatch.setattr(assets_module, "MAX_ASSET_BYTES", 100)
    path = ws.write(
        HEADER + "rows: r.csv\nassets: {mug: mug.png}\n" + JOB,
        files={"r.csv": "p\n" + "x\n" * 10, "mug.png": png},
    )
    assert problems_within(path) == [
        "m.yaml:4:7: rows: CSV file 'r.csv' is 22 bytes; the limit is 10",
        f"m.yaml:5:15: assets.mug: asset file 'mug.png' is {len(png)} bytes; the limit is 100",
    ]
    monkeypatch.setattr(yaml_tree, "MAX_MANIFEST_BYTES", 50)
    (problem,) = problems_within(path)
    assert problem.startswith(f"m.yaml: the manifest is {path.stat().st_size} bytes; the limit is 50\n")


def test_limits_are_generous_for_real_manifests() -> None:
    """The limits leave room for large real batches: 8 MiB manifests, 64 MiB CSVs, 32 levels."""
    assert manifest_module.MAX_MANIFEST_BYTES == 8 * 2**20
    assert manifest_module.MAX_ROWS_BYTES == 64 * 2**20
    assert manifest_module.MAX_NESTING_DEPTH >= 16
    assert manifest_module.MAX_MANIFEST_VALUES >= 100_000


def test_nesting_at_the_limit_loads_and_one_more_level_is_refused(ws: Workspace) -> None:
    """Exactly MAX_NESTING_DEPTH levels (the manifest mapping included) load; one more is a problem."""
    depth = manifest_module.MAX_NESTING_DEPTH
    inner = depth - 3  # the manifest mapping, `jobs:` and the job are three levels

    def deep(levels: int) -> str:
        return (
            HEADER
            + "jobs:\n  - name: a\n    prompt: x\n    deep: "
            + "[" * levels
            + "1"
            + "]" * levels
            + "\n"
        )

    assert ws.load(deep(inner)).jobs[0].fields["deep"] is not None
    with pytest.raises(ManifestError) as caught:
        ws.load(deep(inner + 1))
    assert [str(p) for p in caught.value.problems] == [
        f"m.yaml:7:{11 + inner}: mappings and lists are nested more than {depth} levels deep\n"
        "    hint: a manifest needs only a few levels: look for brackets that are never closed"
    ]


def test_merge_keys_chained_past_the_depth_limit_are_refused(ws: Workspace) -> None:
    """3,000 mappings each merging the one before (`<<: *previous`) stop at the depth limit, no RecursionError."""
    lines = ["x0: &x0 {k: 1}", *(f"x{i}: &x{i} {{<<: *x{i - 1}}}" for i in range(1, 3000))]
    with pytest.raises(ManifestError) as caught:
        ws.load(HEADER + "\n".join(lines) + "\n" + JOB)
    (problem,) = caught.value.problems
    assert "more than 32 levels deep (through YAML aliases)" in problem.message


def test_aliases_used_a_few_times_still_load(ws: Workspace) -> None:
    """Aliases within the limits expand as before: 3 levels of 10 uses give 1,000 values."""
    manifest = ws.load(
        HEADER + "jobs:\n  - name: a\n    prompt: x\n    a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        "    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "    many: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    )
    assert sum(len(a) for b in manifest.jobs[0].fields["many"] for a in b) == 1000


def test_hundreds_of_thousands_of_open_brackets_are_refused_without_a_crash(ws: Workspace) -> None:
    """libyaml's composer recurses in C: the depth is measured on its event stream before composing."""
    with pytest.raises(ManifestError) as caught:
        ws.load(HEADER + "jobs: " + "[" * 300_000 + "\n")
    (problem,) = caught.value.problems
    assert "nested more than 32 levels deep" in problem.message


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
@pytest.mark.parametrize("name", ["demo.yaml", "spring-campaign.yaml"])
def test_libyaml_and_the_python_parser_give_the_same_values_and_positions(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped manifests read the same values, and the same line and column for each, with libyaml and
    with the pure-Python parser."""
    text = (Path(__file__).parents[2] / "jobs" / name).read_text()

    def read(
        with_libyaml: bool,
    ) -> tuple[object, dict[object, tuple[int, int]], dict[object, tuple[int, int]]]:
        monkeypatch.setattr(yaml, "__with_libyaml__", with_libyaml)
        tree = yaml_tree.Tree(name)
        data = tree.convert(yaml_tree.compose(text, name), ())
        return data, tree.values, tree.keys

    assert read(True) == read(False)


def test_a_file_libyaml_rejects_gets_the_python_parsers_message(ws: Workspace) -> None:
    """libyaml says "found character that cannot start any token"; the message names the tab."""
    with pytest.raises(ManifestError) as caught:
        ws.load(HEADER + "jobs:\n\t- name: a\n")
    (problem,) = caught.value.problems
    assert "'\\t'" in problem.message and problem.hint == "indent with spaces, not tabs"


@pytest.mark.timeout(20)
def test_a_long_axis_mixing_text_and_numbers_with_a_late_duplicate_is_found_in_one_pass(
    ws: Workspace,
) -> None:
    """jsonschema's own uniqueness check compares pair by pair when values do not sort: hours at 100,000."""
    values = [f"v{i}" if i % 2 else i for i in range(100_000)] + [99_998]
    text = (
        HEADER
        + "jobs:\n  - name: a\n    prompt: x {n}\n    matrix:\n      n: ["
        + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values)
        + "]\n"
    )
    with pytest.raises(ManifestError) as caught:
        ws.plan(text)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field, problem.message) == (
        8,
        "jobs[0].matrix.n",
        "lists 99998 more than once",
    )

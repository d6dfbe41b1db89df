"""A hostile model registry: `batchgen plan` and `run` exit 2 with one clear sentence, nothing sent.

The manifest names a model the emulator runs but batchgen does not ship, so the CLI asks
`GET /api/ai/models/{id}`; the emulator's test hook `override_model` makes that answer broken.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batchgen.emulator import Emulator
from tests.e2e.conftest import api_args, run_cli

MODEL = "kling-video-v2-6-pro-text-to-video"  # in the emulator's registry, not in batchgen/data/models/
SENTENCE = f"batchgen: error: the API's description of model {MODEL} is unusable: "


def deep_schema_json(levels: int) -> bytes:
    """A model object whose request schema nests `levels` objects deep, as JSON text."""
    schema = '{"items": ' * (levels - 1) + "{}" + "}" * (levels - 1)
    return f'{{"id": "{MODEL}", "request_schema": {schema}}}'.encode()


ANSWERS: dict[str, tuple[Any, str]] = {
    "list": ([{"id": MODEL}], "expected a JSON object describing the model, got an array"),
    "string": ("kling", 'expected a JSON object describing the model, got a string "kling"'),
    "null": (None, "expected a JSON object describing the model, got null"),
    "no-id": ({"object": "model", "request_schema": {}}, "it has no 'id'"),
    "bad-pattern": (
        {"id": MODEL, "request_schema": {"properties": {"prompt": {"type": "string", "pattern": "(("}}}},
        "its request schema has a pattern Python's re cannot compile",
    ),
    "800-deep": (deep_schema_json(800), "its description nests objects and arrays more than 32 levels deep"),
    "ref-root": ({"id": MODEL, "request_schema": {"$ref": "#"}}, 'its request schema is recursive: $ref "#"'),
    "100000-deep-json": (b"[" * 100_000 + b"]" * 100_000, "it has no 'id'"),
}


def write_manifest(root: Path) -> Path:
    path = root / "m.yaml"
    path.write_text(
        json.dumps({"version": 1, "name": "hostile", "model": MODEL, "jobs": [{"name": "a", "prompt": "x"}]})
    )
    return path


def assert_refused(result: Any, reason: str, emu: Emulator) -> None:
    assert result.code == 2, result.stderr
    assert result.stderr.startswith(SENTENCE + reason), result.stderr
    assert "Traceback" not in result.stderr
    assert dict(emu.counters.requests) == {"GET /api/ai/models/{model_id}": 1}  # nothing else was asked


@pytest.mark.parametrize("case", list(ANSWERS))
async def test_plan_with_a_hostile_registry_answer_exits_2_with_one_sentence(
    emulator: Any, tmp_path: Path, case: str
) -> None:
    """`batchgen plan` with a key asks the registry once; each broken answer is exit 2, no traceback."""
    emu = await emulator()
    answer, reason = ANSWERS[case]
    emu.override_model(MODEL, answer)
    result = await run_cli("plan", str(write_manifest(tmp_path)), *api_args(emu)[:4], cwd=tmp_path)
    assert_refused(result, reason, emu)


async def test_run_with_a_recursive_registry_schema_exits_2_and_submits_nothing(
    emulator: Any, tmp_path: Path
) -> None:
    """`batchgen run` against a registry whose schema is `$ref: "#"`: exit 2, 0 enqueues, no run directory."""
    emu = await emulator()
    answer, reason = ANSWERS["ref-root"]
    emu.override_model(MODEL, answer)
    result = await run_cli("run", str(write_manifest(tmp_path)), "-o", "out", *api_args(emu), cwd=tmp_path)
    assert_refused(result, reason, emu)
    assert emu.counters.generations_enqueued == 0
    assert not (tmp_path / "out").exists()


async def test_the_same_model_plans_once_the_registry_answers_properly(emulator: Any, tmp_path: Path) -> None:
    """Control: without the override the same manifest plans (exit 0) from the registry's real answer."""
    emu = await emulator()
    result = await run_cli("plan", str(write_manifest(tmp_path)), *api_args(emu)[:4], cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert "1 job" in result.stdout


async def test_plan_with_a_wrong_key_stops_at_the_401_instead_of_planning_from_a_snapshot(
    emulator: Any, tmp_path: Path
) -> None:
    """A registry read refused 401 is not "the registry did not answer": no fall back to the shipped
    snapshot of a model batchgen ships, but the error naming OXEN_API_KEY (exit 1), the key not said."""
    emu = await emulator()
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        json.dumps(
            {
                "version": 1,
                "name": "k",
                "model": "kling-video-o3-omni",
                "jobs": [{"name": "a", "prompt": "x"}],
            }
        )
    )
    args = api_args(emu)[:4]
    args[args.index(emu.api_key)] = "not-the-key"
    result = await run_cli("plan", str(manifest), *args, cwd=tmp_path)
    assert result.code == 1, result.stderr
    assert "HTTP 401" in result.stderr and "OXEN_API_KEY" in result.stderr and "snapshot" not in result.stderr
    assert "not-the-key" not in result.stderr + result.stdout

"""Property tests: planning is deterministic, and keys are unique exactly per distinct request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchgen.manifest import load_manifest
from batchgen.planning import build_plan, plan_to_json
from batchgen.registry import SnapshotCatalog

CATALOG = SnapshotCatalog()
WORDS = st.sampled_from(["mug", "bag", "Hat", "hat", "café", "a b", "16:9", "x/y", "1", "true"])
AXIS_NAMES = st.sampled_from(["product", "mood", "take", "colour"])


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    """Small random manifests: a manifest matrix, job matrices, repeats, optional seeds and ratios."""
    axes = draw(st.dictionaries(AXIS_NAMES, st.lists(WORDS, min_size=1, max_size=3, unique=True), max_size=2))
    jobs = []
    for i in range(draw(st.integers(1, 3))):
        job: dict[str, Any] = {
            "name": f"job{i}",
            "prompt": f"shot {i}: " + " ".join(f"{{{a}}}" for a in axes),
        }
        if draw(st.booleans()):
            job["matrix"] = {"seed": draw(st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True))}
            job["seed"] = "{seed}"
        if draw(st.booleans()):
            job["aspect_ratio"] = draw(st.sampled_from(["16:9", "9:16", "1:1"]))
        job["repeat"] = draw(st.integers(1, 3))
        jobs.append(job)
    manifest: dict[str, Any] = {
        "version": 1,
        "name": "prop",
        "model": "kling-video-o3-pro-reference-to-video",
        "jobs": jobs,
    }
    if axes:
        manifest["matrix"] = axes
    return manifest


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manifests())
def test_plan_is_deterministic_and_keys_are_unique_per_request(tmp_path: Path, data: dict[str, Any]) -> None:
    """Building twice (even from a reloaded file) gives equal plans and equal JSON; distinct requests, distinct keys."""
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    first = build_plan(load_manifest(path), CATALOG)
    second = build_plan(load_manifest(path), CATALOG)
    assert first == second
    assert json.dumps(plan_to_json(first), sort_keys=True) == json.dumps(plan_to_json(second), sort_keys=True)
    identities = {(j.model, json.dumps(j.request, sort_keys=True), j.replica) for j in first.jobs}
    keys = {j.key for j in first.jobs}
    assert len(keys) == len(identities) == len(first.jobs)
    assert len({j.output_path.casefold() for j in first.jobs}) == len(first.jobs)
    assert [j.index for j in first.jobs] == list(range(len(first.jobs)))

"""The example manifests in jobs/ plan cleanly, offline, with the shipped snapshots."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from batchgen.manifest import LocalAsset, load_manifest
from batchgen.planning import build_plan
from batchgen.registry import SnapshotCatalog

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def test_demo_plans_nine_jobs_with_a_local_and_a_public_reference() -> None:
    """jobs/demo.yaml: 3 specs x 3 aspect ratios, a multi_prompt job, one local PNG uploaded once."""
    manifest = load_manifest(JOBS / "demo.yaml")
    plan = build_plan(manifest, SnapshotCatalog())
    assert len(plan.jobs) == 9
    assert plan.count_by_aspect_ratio() == {"16:9": 3, "9:16": 3, "1:1": 3}
    mug = manifest.assets["mug"]
    assert isinstance(mug, LocalAsset) and mug.media_type == "image/png" and 100 < mug.size < 1000
    assert sum(1 for j in plan.jobs if j.assets == (mug,)) == 3
    assert any("multi_prompt" in j.request for j in plan.jobs)
    assert plan.total_cost_usd == Decimal("13.440")
    assert manifest.run["budget_usd"] >= plan.total_cost_usd


def test_spring_campaign_plans_within_its_budget() -> None:
    """jobs/spring-campaign.yaml: CSV products x ratios x takes plus stories, under its budget."""
    manifest = load_manifest(JOBS / "spring-campaign.yaml")
    plan = build_plan(manifest, SnapshotCatalog())
    assert len(plan.jobs) == 21
    assert {j.vars["product"] for j in plan.jobs} == {"mug", "tote", "sneaker"}
    assert plan.total_cost_usd is not None and plan.total_cost_usd <= manifest.run["budget_usd"]
    assert manifest.upload is not None and manifest.upload["branch"] == "main"
    assert all(j.output_path.startswith(j.vars["product"] + "/") for j in plan.jobs)

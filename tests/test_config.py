"""Run settings from a manifest's `run:` mapping."""

from decimal import Decimal

from batchgen.config import Limits, RetryPolicy, Timeouts, options_from_manifest


def test_a_manifests_run_settings_land_in_their_places_and_the_rest_keep_the_defaults() -> None:
    """`run.timeouts` names map onto Timeouts' fields (download_s is one read of a download), the
    limits, retries and budget onto theirs; what the manifest does not set keeps the defaults."""
    options = options_from_manifest(
        {"concurrency": 3, "retries": 0, "budget_usd": 12.5, "timeouts": {"request_s": 5, "download_s": 7}},
        None,
    )
    assert options.limits == Limits(concurrency=3)
    assert options.retry == RetryPolicy(generation_retries=0)
    assert options.timeouts == Timeouts(request_s=5.0, download_read_s=7.0)
    assert options.budget_usd == Decimal("12.5")
    assert options_from_manifest({"timeouts": {"generation_s": 600}}, None).timeouts.generation_s == 600.0
    assert options_from_manifest({}, None) == options_from_manifest({"timeouts": {}}, None)

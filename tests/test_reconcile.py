"""Matching the provider's echoed queue rows to submissions whose answer was lost."""

from batchgen.reconcile import Pending, match_submissions, row_matches

BODY = {"model": "kling", "prompt": "a cat", "duration": 5, "aspect_ratio": "16:9"}


def row(gid: str, at: float = 1000, **overrides: object) -> dict[str, object]:
    base = {"generation_id": gid, "model_name": "kling", "prompt": "a cat", "duration": 5,
            "aspect_ratio": "16:9", "status": "queued", "enqueued_at": at, "media_type": "video"}
    return {**base, **overrides}


def test_a_row_matches_only_when_every_sent_parameter_is_echoed_equal() -> None:
    """Model and every sent field must match; extra row fields do not matter."""
    assert row_matches(BODY, row("a"))
    assert not row_matches(BODY, row("a", duration=10))
    assert not row_matches(BODY, row("a", model_name="other"))
    assert not row_matches({**BODY, "seed": 3}, row("a"))


def test_a_row_echoing_a_parameter_we_did_not_send_is_not_ours() -> None:
    """Another request with one more parameter (say, seed) is a different generation."""
    assert not row_matches(BODY, row("a", seed=7))
    assert row_matches(BODY, row("a", cost="1.12", target_repo="ai-generations", started_at=None))


def test_identical_replicas_get_distinct_rows_and_claimed_rows_are_skipped() -> None:
    """Two identical submissions take two different rows; a row already journaled is never reused."""
    pending = [Pending("k1", BODY, 1000), Pending("k2", BODY, 1001)]
    rows = [row("g0"), row("g1", at=1001), row("g2", at=1002)]
    found = match_submissions(pending, rows, claimed={"g0"})
    assert {k: r["generation_id"] for k, r in found.items()} == {"k1": "g1", "k2": "g2"}


def test_rows_far_older_than_the_submission_are_not_ours() -> None:
    """A matching row enqueued long before we journaled the submit belongs to an earlier run."""
    found = match_submissions([Pending("k", BODY, 10_000)], [row("old", at=1000)], claimed=set())
    assert found == {}


def test_no_row_means_not_created() -> None:
    """Without a matching row the submission is reported as not found (safe to send again)."""
    assert match_submissions([Pending("k", BODY, 1000)], [row("x", prompt="a dog")], claimed=set()) == {}

"""Matching the provider's echoed queue rows to submissions whose answer was lost."""

from batchgen.client.reconcile import (
    CLOCK_SKEW_S,
    Pending,
    Scope,
    earliest_match,
    match_submissions,
    merge_rows,
    provider_time,
    row_matches,
    search_scopes,
    unaccounted_rows,
)

BODY = {"model": "kling", "prompt": "a cat", "duration": 5, "aspect_ratio": "16:9"}


def row(gid: str, at: float = 1000, **overrides: object) -> dict[str, object]:
    base = {
        "generation_id": gid,
        "model_name": "kling",
        "prompt": "a cat",
        "duration": 5,
        "aspect_ratio": "16:9",
        "status": "queued",
        "enqueued_at": at,
        "media_type": "video",
    }
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


def test_a_row_echoing_schema_defaults_we_left_out_is_still_ours() -> None:
    """A service that fills in aspect_ratio/generate_audio defaults and echoes them must not make a
    crash recovery pay again; a non-default extra value still rules the row out."""
    body = {"model": "kling", "prompt": "a cat"}
    defaults = {"aspect_ratio": "16:9", "generate_audio": False, "duration": 5}
    echoed = row("a", generate_audio=False)
    assert not row_matches(body, echoed)  # without the defaults: an unknown extra parameter
    assert row_matches(body, echoed, defaults)
    assert not row_matches(body, row("b", aspect_ratio="9:16"), defaults)
    found = match_submissions(
        [Pending("k", body, 1000)], [echoed], claimed=set(), defaults={"kling": defaults}
    )
    assert found["k"]["generation_id"] == "a"


def test_rows_of_another_namespace_are_not_ours() -> None:
    """A history row that names a different target namespace than the one billed is skipped."""
    body = {**BODY, "target_namespace": "acme-org"}
    rows = [row("mine", target_namespace="someone"), row("org", target_namespace="acme-org")]
    assert match_submissions([Pending("k", body, 1000)], rows, claimed=set())["k"]["generation_id"] == "org"


def test_search_scopes_cover_every_namespace_and_model_billed() -> None:
    """Org-billed bodies are searched under their namespace; the own namespace needs no filter."""
    bodies = [BODY, {**BODY, "target_namespace": "acme-org"}, {**BODY, "model": "flux"}, BODY]
    assert search_scopes(bodies) == [Scope(None, "flux"), Scope(None, "kling"), Scope("acme-org", "kling")]


def test_earliest_match_allows_for_clock_skew() -> None:
    """History paging stops before the oldest submission minus the skew allowance."""
    assert earliest_match([Pending("a", BODY, 5000), Pending("b", BODY, 4000)]) == 4000 - CLOCK_SKEW_S


def test_a_submission_whose_provider_time_is_unknown_rules_out_no_row_by_time() -> None:
    """Without the provider's time of the submission, an old matching row may still be ours: it is
    matched (a wrong local clock must never decide that a row is not ours), and history is read whole."""
    pending = [Pending("k", BODY, None), Pending("j", BODY, 5000)]
    assert earliest_match(pending) is None
    found = match_submissions([Pending("k", BODY, None)], [row("old", at=1000)], claimed=set())
    assert found["k"]["generation_id"] == "old"


def test_the_provider_time_journaled_with_a_submission_wins_over_our_clock() -> None:
    """A submission journaled with its provider time keeps it (our clock may have been stepped since);
    an older journal's local time is moved by the offset measured now; with neither, it is unknown."""
    assert provider_time(1000.0, 1600.0, -600.0) == 1000.0
    assert provider_time(1000.0, 1600.0, None) == 1000.0
    assert provider_time(None, 1600.0, -600.0) == 1000.0
    assert provider_time(None, 1600.0, None) is None
    assert provider_time(None, None, -600.0) is None


def test_merged_listings_keep_the_furthest_status() -> None:
    """The same row seen active in the lean list and finished in the history counts as finished."""
    merged = merge_rows([row("g", status="processing")], [row("g", status="succeeded"), row("h")])
    assert {r["generation_id"]: r["status"] for r in merged} == {"g": "succeeded", "h": "queued"}


def test_rows_beyond_the_one_matched_are_unaccounted_unless_kept_for_our_own_lost_submissions() -> None:
    """Another run's identical row cannot be told from ours: beyond the row matched to a submission,
    every unclaimed matching row is listed under it (to be fetched too), except rows kept for our own
    submissions still to be looked for, rows already claimed, and rows too old to be either."""
    pending = [Pending("k", BODY, 1000)]
    rows = [row("ours", at=1000), row("theirs", at=1000), row("mine-later", at=1001), row("old", at=10)]
    found = match_submissions(pending, rows, claimed={"claimed"})
    extra = unaccounted_rows(pending, [*rows, row("claimed")], {"claimed"}, found)
    assert found["k"]["generation_id"] == "ours"
    assert [r["generation_id"] for r in extra["k"]] == ["theirs", "mine-later"]
    kept = unaccounted_rows(pending, rows, set(), found, others=[Pending("j", BODY, 1001)])
    assert [r["generation_id"] for r in kept["k"]] == ["mine-later"]  # "theirs" may be j's own


def test_no_row_is_unaccounted_for_a_submission_whose_provider_time_is_unknown() -> None:
    """Without a provider time every identical row of the account's history would qualify: none does."""
    pending = [Pending("k", BODY, None)]
    rows = [row("a"), row("b")]
    assert unaccounted_rows(pending, rows, set(), match_submissions(pending, rows, set())) == {}

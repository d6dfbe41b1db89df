"""The provider's clock against ours, from the Date header of its answers."""

from __future__ import annotations

import pytest

from batchgen.client.serverclock import ServerClock, parse_http_date

DATE = "Sun, 06 Dec 2026 05:48:21 GMT"
AT = 1796536101.0  # DATE as Unix seconds


def test_an_http_date_is_read_as_unix_seconds_and_anything_else_as_unknown() -> None:
    """RFC 9110 dates (and a zone-less `-0000` one, read as GMT) parse; junk and absence do not."""
    assert parse_http_date(DATE) == AT
    assert parse_http_date("Sun, 06 Dec 2026 05:48:21 -0000") == AT
    for junk in (None, "", "yesterday", "Sun, 99 Foo 2026 99:99:99 GMT"):
        assert parse_http_date(junk) is None


def test_no_date_means_no_offset_and_no_provider_time() -> None:
    """Until an answer carries a date, nothing is known: `to_server` says so rather than guess."""
    clock = ServerClock()
    clock.observe(None, 100.0, 100.2)
    clock.observe("not a date", 100.0, 100.2)
    assert clock.offset is None and clock.to_server(100.0) is None


def test_a_machine_ten_minutes_fast_is_measured_to_the_second() -> None:
    """Our clock reads 600 s ahead: each answer bounds the offset to [D - received, D + 1 - sent]; two
    answers half a second apart narrow it, and a provider time is then ours minus ~600 s."""
    clock = ServerClock()
    clock.observe(DATE, AT + 600.0, AT + 600.1)  # the provider said 05:48:21.x while we read 600 s more
    clock.observe(DATE, AT + 600.6, AT + 600.7)
    assert clock.offset == pytest.approx(-599.85)  # the middle of [-600.1, -599.6], where both bounds meet
    provider = clock.to_server(AT + 700.0)
    assert provider is not None and provider == pytest.approx(AT + 100.0, abs=1.0)


def test_a_clock_stepped_mid_run_starts_the_estimate_again() -> None:
    """An answer whose bounds do not meet the estimate (NTP stepped our clock) replaces it."""
    clock = ServerClock()
    clock.observe(DATE, AT + 600.0, AT + 600.1)
    clock.observe(DATE, AT - 0.05, AT + 0.05)  # now our clock agrees with the provider's
    assert clock.offset == pytest.approx(0.0, abs=1.0)

"""When the safety look for missed completions is due: timed from renders seen and the stream's trust."""

from __future__ import annotations

import pytest

from batchgen.run.overdue import RenderWatch, Waiting


def test_nothing_in_flight_means_no_look() -> None:
    """With nothing waiting there is nothing to look for."""
    assert RenderWatch(300.0).next_look_at([]) is None


def test_before_any_render_a_trusted_generation_waits_the_expected_render_time() -> None:
    """The caller's own namespace is trusted: the first look is one expected render after submission."""
    watch = RenderWatch(300.0)
    assert watch.next_look_at([Waiting(1000.0, None), Waiting(1010.0, None)]) == pytest.approx(1300.0)


def test_a_short_render_seen_does_not_bring_a_trusted_look_forward() -> None:
    """Renders vary (1-5 minutes): seeing a 60 s one must not make a 5-minute one look overdue at 2 min."""
    watch = RenderWatch(300.0)
    watch.observe_render(60.0)
    assert watch.overdue_after(None) == 300.0
    watch.observe_render(240.0)
    assert watch.overdue_after(None) == 480.0  # twice the longest render seen


def test_an_org_namespace_is_untrusted_until_one_of_its_events_arrives() -> None:
    """target_namespace rows: the docs do not say their events reach the user, so look early."""
    watch = RenderWatch(300.0)
    assert watch.overdue_after("acme-org") == pytest.approx(30.0)  # a tenth of the expected render
    watch.observe_render(20.0)
    assert watch.overdue_after("acme-org") == pytest.approx(30.0)  # 1.5 x the longest render seen
    watch.event_arrived("acme-org")
    assert watch.overdue_after("acme-org") == 300.0


def test_a_missed_event_makes_every_namespace_untrusted() -> None:
    """Once the stream was caught missing one of our events, even the own namespace is looked at sooner."""
    watch = RenderWatch(300.0)
    watch.observe_render(2.0)
    watch.event_missed()
    assert watch.overdue_after(None) == pytest.approx(3.0)


def test_untrusted_looks_are_never_more_often_than_a_hundredth_of_the_expected_render() -> None:
    """A floor keeps tiny renders from turning the safety look into a busy poll."""
    watch = RenderWatch(300.0)
    watch.observe_render(0.01)
    watch.event_missed()
    assert watch.overdue_after(None) == pytest.approx(3.0)
    watch.looked(500.0)
    assert watch.next_look_at([Waiting(0.0, None)]) == pytest.approx(503.0)


def test_a_look_restarts_every_deadline() -> None:
    """After a look, a still-running generation is due again one overdue period later, not at once."""
    watch = RenderWatch(100.0)
    waiting = [Waiting(0.0, None)]
    assert watch.next_look_at(waiting) == pytest.approx(100.0)
    watch.looked(100.0)
    assert watch.next_look_at(waiting) == pytest.approx(200.0)

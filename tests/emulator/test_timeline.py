"""Measurement marks: first occurrence only, in the order the benchmarks rely on."""

from batchgen.emulator.timeline import Marks, Timeline


def test_marks_keep_the_first_reading_and_unknown_ids_have_none() -> None:
    """A repeated mark (second connection, resumed download) does not move; unseen ids are all None."""
    now = [10.0]
    timeline = Timeline(clock=lambda: now[0])
    timeline.mark("g", "terminal")
    now[0] = 11.0
    timeline.mark("g", "event_sent")
    now[0] = 12.0
    timeline.mark("g", "event_sent")
    timeline.mark("g", "first_download")
    assert timeline.get("g") == Marks(terminal=10.0, event_sent=11.0, first_download=12.0)
    assert timeline.get("other") == Marks()
    assert set(timeline.snapshot()) == {"g"}

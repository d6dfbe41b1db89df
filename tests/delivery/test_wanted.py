"""What a run directory delivers: done results of the current plan with their sidecars, then the run's
files that exist (never through a symlink)."""

from __future__ import annotations

import os
from pathlib import Path

from batchgen.journal.store import JobRecord
from batchgen.rundir.layout import sidecar_bytes
from batchgen.sinks.oxen.wanted import done_results, run_files
from batchgen.states import JobState
from batchgen.target import DeliveryTarget

TARGET = DeliveryTarget(namespace="meadow", repo="campaigns", path="spring-2026/spring")


def record(idx: int, state: JobState, *, planned: bool = True, sha: str | None = "ab" * 32) -> JobRecord:
    return JobRecord(
        f"k{idx}", idx, "hero", "m", f"mug/hero/{idx}.mp4", state, sha256=sha, size=10, planned=planned
    )


def test_only_done_results_of_the_current_plan_go_with_their_sidecars_in_plan_order() -> None:
    """Only done results of planned jobs are delivered, each followed by its sidecar, in plan order; the video
    carries its sha256."""
    records = [
        record(2, JobState.DONE),
        record(0, JobState.DONE),
        record(1, JobState.SUCCEEDED),
        record(3, JobState.DONE, planned=False),
        record(4, JobState.SUPERSEDED),
    ]
    items = done_results(TARGET, records)
    assert [(i.local, i.repo_path, i.sha256, i.result) for i in items] == [
        ("videos/mug/hero/0.mp4", "spring-2026/spring/videos/mug/hero/0.mp4", "ab" * 32, True),
        ("videos/mug/hero/0.json", "spring-2026/spring/videos/mug/hero/0.json", None, False),
        ("videos/mug/hero/2.mp4", "spring-2026/spring/videos/mug/hero/2.mp4", "ab" * 32, True),
        ("videos/mug/hero/2.json", "spring-2026/spring/videos/mug/hero/2.json", None, False),
    ]


def test_run_files_are_those_that_exist_and_never_a_symlink(tmp_path: Path) -> None:
    """The run files delivered are those that exist; a symlinked report.html is left out until it is a real
    file."""
    (tmp_path / "results.csv").write_text("a\r\n")
    (tmp_path / "elsewhere.html").write_text("<p>")
    os.symlink(tmp_path / "elsewhere.html", tmp_path / "report.html")
    assert [i.repo_path for i in run_files(TARGET, tmp_path)] == ["spring-2026/spring/results.csv"]
    (tmp_path / "report.html").unlink()
    (tmp_path / "report.html").write_text("<html>")
    names = [i.local for i in run_files(TARGET, tmp_path)]
    assert names == ["results.csv", "report.html"]


def test_a_live_sidecar_is_sent_as_the_bytes_the_local_sink_writes() -> None:
    """A result's sidecar is sent as sidecar_bytes of its data (the run directory's bytes), beside the video."""
    from batchgen.sinks.oxen.wanted import result_items

    video, sidecar = result_items(TARGET, "videos/a.mp4", "cd" * 32, 5, {"b": 1, "a": "é"})
    assert sidecar.data == sidecar_bytes({"a": "é", "b": 1}) == '{"a":"é","b":1}\n'.encode()
    assert (video.result, sidecar.local) == (True, "videos/a.json")

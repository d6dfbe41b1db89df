"""Extra takes: their keys and files, beside the job's own, whatever the provider's generation id."""

from __future__ import annotations

from dataclasses import replace

from batchgen.manifest import Location
from batchgen.planning import Job
from batchgen.run.takes import is_take, take_job

JOB = Job(
    key="ab" * 32,
    index=3,
    name="clip",
    replica=0,
    model="kling",
    media_type="video",
    request={"model": "kling", "prompt": "a cat"},
    output_path="clip/clip-3.mp4",
    vars={},
    assets=(),
    location=Location("m.yaml", 1, 1),
    cost_usd=None,
    duration_s=None,
)


def test_an_extra_take_lies_beside_the_job_s_result_under_its_own_key() -> None:
    """`clip/clip-3.mp4` taken again by generation g-1 is `clip/clip-3.take-g-1.mp4`, key `<key>+take-g-1`."""
    take = take_job(JOB, "g-1")
    assert take.output_path == "clip/clip-3.take-g-1.mp4"
    assert take.key == f"{JOB.key}+take-g-1" and is_take(take.key) and not is_take(JOB.key)
    assert take.request == JOB.request and take.cost_usd is None


def test_a_hostile_generation_id_never_leaves_the_job_s_directory() -> None:
    """Slashes, dots and other characters of a generation id are dropped from the file name."""
    take = take_job(JOB, "../../etc/passwd")
    assert take.output_path == "clip/clip-3.take-etcpasswd.mp4"
    assert take_job(JOB, "///").output_path == "clip/clip-3.take-unknown.mp4"
    assert take_job(JOB, "x" * 500).output_path.count("x") == 64


def test_an_extra_take_is_named_for_people_after_its_job_and_its_generation() -> None:
    """Its readable name is the job's, then `extra take` and the generation id's first 8 characters."""
    titled = replace(JOB, title="clip · 3")
    assert take_job(titled, "g-123456789").label == "clip · 3 · extra take g-123456"
    assert take_job(JOB, "g-1").label == f"clip · {JOB.key[:6]} · extra take g-1"  # a job without a title

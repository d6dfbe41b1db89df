"""The failure breaker's decision (run/breaker.py) and the settings of a night (config.py): pure."""

from __future__ import annotations

import warnings
from decimal import Decimal
from pathlib import Path

import pytest

from batchgen.config import FailureThreshold, NotifyTarget, RunOptions, options_from_manifest
from batchgen.errors import UserError
from batchgen.run.breaker import FailureBreaker, over_threshold
from batchgen.states import JobState as S


@pytest.mark.parametrize(
    ("written", "count", "percent"),
    [(25, 25, None), ("25", 25, None), ("10%", None, Decimal(10)), (" 2.5 % ", None, Decimal("2.5"))],
)
def test_a_threshold_is_a_count_or_a_percentage(
    written: object, count: int | None, percent: Decimal | None
) -> None:
    """25 and "25" are counts; "10%" and "2.5 %" percentages."""
    threshold = FailureThreshold.parse(written)
    assert (threshold.count, threshold.percent) == (count, percent)


@pytest.mark.parametrize("written", [0, -1, "0%", "101%", "nan%", "ten", True, "1.5", ""])
def test_a_threshold_that_means_nothing_is_refused(written: object) -> None:
    """No zero, no negative, no share beyond 100 %, no words, no fraction of a job."""
    with pytest.raises(ValueError, match="halt_after_failures"):
        FailureThreshold.parse(written)


@pytest.mark.parametrize(
    ("threshold", "failures", "finished", "stops"),
    [
        ("3", 2, 2, False),
        ("3", 3, 3, True),  # a count acts at once, whatever has finished
        ("3", 3, 100, True),
        ("10%", 9, 9, False),  # fewer than 10 finished: a share of them says little yet
        ("10%", 1, 10, True),  # 10 % of 10 reaches 10 %
        ("10%", 1, 11, False),
        ("10%", 0, 10, False),
        ("50%", 10, 20, True),
        ("50%", 10, 21, False),
    ],
)
def test_over_threshold(threshold: str, failures: int, finished: int, stops: bool) -> None:
    """A count stops at the count; a percentage once 10 jobs have finished and the share reaches it."""
    said = over_threshold(FailureThreshold.parse(threshold), failures, finished, 10)
    assert (said is not None) == stops
    if said is not None:
        assert str(failures) in said and "run.halt_after_failures" in said


def test_the_breaker_counts_each_job_once_and_trips_once() -> None:
    """Successes are generations that succeeded from flight; failed and invalid jobs are failures; a
    retry (back to pending), a cancel, a startup's restart or a download are no finish; a job is
    counted once; the breaker trips on the change that reaches the count, and never again."""
    breaker = FailureBreaker(FailureThreshold(count=2))
    assert breaker.finished("a", S.PROCESSING, S.PENDING) is None  # a transient failure, retried
    assert breaker.finished("a", S.PROCESSING, S.CANCELLED) is None
    assert breaker.finished("a", S.FAILED, S.PENDING) is None  # a rerun's restart
    assert breaker.finished("b", S.PROCESSING, S.SUCCEEDED) is None
    assert breaker.finished("b", S.SUCCEEDED, S.DONE) is None
    assert breaker.finished("b", S.DONE, S.SUCCEEDED) is None  # a file gone missing: no new finish
    assert breaker.finished("c", S.PROCESSING, S.FAILED) is None
    assert breaker.finished("c", S.PROCESSING, S.FAILED) is None  # the same job again: still one
    assert breaker.failed == {"b": False, "c": True}
    tripped = breaker.finished("d", S.QUEUED, S.INVALID)
    assert tripped == "2 job(s) failed, the limit of 2 (run.halt_after_failures)"
    assert breaker.tripped == tripped
    assert breaker.finished("e", S.PENDING, S.FAILED) is None  # tripped once


def test_the_manifest_sets_the_breaker_and_options_check_it() -> None:
    """`run.halt_after_failures` reaches RunOptions; a bad one is a ValueError naming the key."""
    assert options_from_manifest(
        {"halt_after_failures": "10%"}, None
    ).halt_after_failures == FailureThreshold(percent=Decimal(10))
    assert RunOptions().halt_after_failures is None
    with pytest.raises(ValueError, match="halt_after_failures"):
        options_from_manifest({"halt_after_failures": "lots"}, None)


def test_notify_targets_are_a_command_or_a_url() -> None:
    """A manifest target is a command (argv) or a webhook, never both; `--notify` takes a URL as a
    webhook and splits anything else into words (no shell: `;` and `$HOME` stay words)."""
    assert NotifyTarget.from_manifest({"command": ["mail", "-s", "done", "me@example.com"]}).command == (
        "mail",
        "-s",
        "done",
        "me@example.com",
    )
    hook = NotifyTarget.from_manifest({"webhook": "https://hooks.example.com/x", "timeout_s": 5})
    assert (hook.webhook, hook.timeout_s) == ("https://hooks.example.com/x", 5.0)
    assert NotifyTarget.parse("https://hooks.example.com/x").webhook == "https://hooks.example.com/x"
    assert NotifyTarget.parse("mail -s 'night over' me; echo $HOME").command == (
        "mail",
        "-s",
        "night over",
        "me;",
        "echo",
        "$HOME",
    )
    for bad in ({"webhook": "ftp://x"}, {"command": [], "webhook": None}):
        with pytest.raises(ValueError, match="notify"):
            NotifyTarget.from_manifest(bad)
    with pytest.raises(ValueError, match="not both"):
        NotifyTarget(command=("true",), webhook="https://x")


def test_run_manifest_takes_say_and_still_notify_with_a_warning(tmp_path: Path) -> None:
    """Human notes go to `say=`; the old `notify=` callable still reaches them, with a DeprecationWarning
    (the word now names the manifest's `notify:` targets)."""
    import batchgen

    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nname: m\nmodel: no-such-model\njobs: [{name: a, prompt: hi}]\n")
    for name in ("say", "notify"):
        notes: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(batchgen.UserError, match="unknown model"):
                batchgen.run_manifest(manifest, sandbox=True, output_dir=tmp_path, **{name: notes.append})
        assert [note.split(" at ")[0] for note in notes] == ["sandbox: using the built-in emulator"]
        deprecated = [
            w for w in caught if issubclass(w.category, DeprecationWarning) and "say=" in str(w.message)
        ]
        assert len(deprecated) == (name == "notify")


def test_the_library_commands_take_say_and_still_notify_with_a_warning(tmp_path: Path) -> None:
    """`run_status`, `plan_manifest`, `cancel_run` and `settle_unverified` take `say=`; `notify=` still
    reaches the same place, with a DeprecationWarning naming the new word."""
    from batchgen import commands

    for command in (commands.run_status, commands.cancel_run, commands.settle_unverified):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(UserError, match="not a batchgen run directory"):
                command(tmp_path / "none", notify=print)
        assert [str(w.message) for w in caught] == [f"{command.__name__}'s notify= is now say="]
    manifest = tmp_path / "m.yaml"
    manifest.write_text("version: 1\nname: m\nmodel: no-such-model\njobs: [{name: a, prompt: hi}]\n")
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UserError, match="unknown model"):
            commands.plan_manifest(manifest, sandbox=True, output_dir=tmp_path, notify=notes.append)
    assert [note.split(" at ")[0] for note in notes] == ["sandbox: using the built-in emulator"]
    assert [str(w.message) for w in caught] == ["plan_manifest's notify= is now say="]


def test_the_manifest_checks_notify_and_the_breaker_at_their_lines(tmp_path: Path) -> None:
    """A shell string for a command, a URL that is not http(s), an entry with both, and a breaker in
    words are each refused at their line, in one round; a single target is a list of one."""
    from batchgen.manifest import load_manifest

    head = "version: 1\nname: n\nmodel: m\njobs: [{name: a, prompt: hi}]\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        head + 'run: {halt_after_failures: "ten"}\nnotify:\n  - command: "mail -s hi me"\n'
        "  - webhook: ftp://x\n  - {command: [a], webhook: 'https://x'}\n"
    )
    with pytest.raises(UserError) as refused:
        load_manifest(bad)
    said = str(refused.value)
    located = {line.split(":")[1]: line for line in said.splitlines() if line.startswith(str(bad))}
    assert "run.halt_after_failures" in located["5"]
    assert "notify[0].command: expected a list" in located["7"]
    assert "notify[1].webhook" in located["8"]
    assert "notify[2]" in located["9"]
    good = tmp_path / "good.yaml"
    good.write_text(head + "notify: {webhook: 'https://hooks.example.com/x', timeout_s: 3}\n")
    assert load_manifest(good).notify == ({"webhook": "https://hooks.example.com/x", "timeout_s": 3},)

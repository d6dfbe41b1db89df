"""Command-line usage errors: exit 2, one clear line, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.cli import main

DEMO = str(Path(__file__).resolve().parents[1] / "jobs" / "demo.yaml")


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OXEN_API_KEY", raising=False)
    monkeypatch.delenv("OXEN_API_BASE", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", DEMO], "no API key: set OXEN_API_KEY (or pass --api-key), or try --sandbox"),
        (["run", DEMO, "--sandbox", "-j", "0"], "'concurrency' must be > 0, got 0"),
        (["run", DEMO, "--sandbox", "--budget", "abc"], "--budget must be an amount in USD"),
        (["run", DEMO, "--sandbox", "--budget", "-5"], "--budget must be a positive amount in USD"),
        (["run", DEMO, "--sandbox", "--upload-repo", "justone"], "upload repository must be 'namespace/repo"),
        (["run", "missing.yaml", "--sandbox"], "missing.yaml: cannot read the manifest"),
        (["status", "."], "is not a batchgen run directory"),
        (["cancel", "nowhere", "--api-key", "k"], "nowhere is not a batchgen run directory"),
        (["run", DEMO, "--sandbox", "--budget", "0.5"], "less than the cheapest job ($1.120)"),
    ],
)
def test_usage_errors_exit_two_with_one_clear_message(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each mistake exits 2 with a message saying what to fix, and leaves no run directory behind."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("batchgen: error: ")
    assert message in err
    assert not (tmp_path / "outputs").exists()


def test_no_command_prints_help_and_exits_two(capsys: pytest.CaptureFixture[str]) -> None:
    """`batchgen` alone shows the commands and the exit codes."""
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "run" in out and "plan" in out and "exit codes" in out


def test_schema_prints_the_manifest_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`batchgen schema` prints a JSON Schema an editor can use."""
    import json

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "$schema" in schema and "jobs" in schema["properties"]


def test_plan_is_offline_and_exits_zero_for_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    """`batchgen plan` on the demo prints counts and the quote without any key or network."""
    assert main(["plan", DEMO]) == 0
    out = capsys.readouterr().out
    assert "9 jobs" in out and "cost quote: $13.44" in out


def test_the_emulator_subcommand_exposes_every_knob(capsys: pytest.CaptureFixture[str]) -> None:
    """`batchgen emulator --help` lists the emulator's knobs (time scale, faults, credits)."""
    with pytest.raises(SystemExit) as info:
        main(["emulator", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--port", "--time-scale", "--credits-usd", "--enqueue-cut-rate", "--sse-cut-every-seconds"):
        assert flag in out, flag

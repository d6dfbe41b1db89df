"""The command line: a flag per knob, config from flags, and `python -m batchgen.emulator`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from batchgen.emulator import EmulatorConfig, FaultConfig, LatencyConfig, cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_every_knob_has_a_flag_with_help() -> None:
    """add_arguments adds one --flag, with help text, for each field of the three config classes."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    actions = {action.dest: action for action in parser._actions}
    for cls in (EmulatorConfig, LatencyConfig, FaultConfig):
        for field in dataclasses.fields(cls):
            if field.name in ("latency", "faults"):
                continue
            action = actions[field.name]
            assert action.option_strings[0] == "--" + field.name.replace("_", "-")
            assert action.help and len(action.help) > 20


def test_defaults_match_the_config_except_the_port() -> None:
    """With no flags the config is the default one, on the fixed CLI port 8765."""
    assert cli.config_from_args(parse()) == EmulatorConfig(port=8765)


def test_flags_reach_the_config() -> None:
    """Flags of every kind (float, int, optional, bool, list) land in the right config field."""
    config = cli.config_from_args(
        parse(
            "--port",
            "0",
            "--time-scale",
            "0.01",
            "--credits-usd",
            "12.5",
            "--auto-create-repos",
            "--video-render-median-seconds",
            "60",
            "--rate-limit-rate",
            "0.25",
            "--server-error-routes",
            "POST /api/ai/queue",
            "/api/events",
            "--sse-cut-after-events",
            "3",
        )
    )
    assert (config.port, config.time_scale, config.credits_usd, config.auto_create_repos) == (
        0,
        0.01,
        12.5,
        True,
    )
    assert config.latency.video_render_median_seconds == 60
    assert config.faults.rate_limit_rate == 0.25
    assert config.faults.server_error_routes == ("POST /api/ai/queue", "/api/events")
    assert config.faults.sse_cut_after_events == 3


def test_bad_value_exits_2_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    """run() refuses an invalid knob with exit code 2 and a message naming it."""
    assert cli.run(parse("--account-concurrency", "0")) == 2
    assert "EmulatorConfig.account_concurrency" in capsys.readouterr().err


async def test_python_m_runs_until_interrupted() -> None:
    """`python -m batchgen.emulator` prints its URL and key, serves, and exits 0 on Ctrl-C (SIGINT)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "batchgen.emulator",
        "--port",
        "0",
        "--time-scale",
        "0.001",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            first = (await process.stdout.readline()).decode()
            key = (await process.stdout.readline()).decode()
            assert first.startswith("Oxen API emulator listening on http://127.0.0.1:")
            assert key.strip() == "API key: emulator-key"
            base_url = first.rsplit(" ", 1)[1].strip()
            async with aiohttp.ClientSession() as session, session.get(base_url + "/api/ai/models") as resp:
                assert resp.status == 200
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_every_flag_is_documented() -> None:
    """docs/emulator.md lists every command-line flag."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "emulator.md").read_text(encoding="utf-8")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    flags = [action.option_strings[0] for action in parser._actions if action.dest != "help"]
    assert len(flags) == 39
    assert [flag for flag in flags if f"`{flag}`" not in docs] == []

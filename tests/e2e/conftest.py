"""End-to-end fixtures: an emulator on 127.0.0.1 and the real CLI in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batchgen.emulator import Emulator, EmulatorConfig, run_emulator

FAST = {"time_scale": 0.0005, "keepalive_seconds": 0.5, "auto_create_repos": True}


@pytest.fixture
async def emulator() -> AsyncIterator[Callable[..., Awaitable[Emulator]]]:
    """A factory: `await emulator(**config)` starts one; all are stopped at the end (LIFO)."""
    stack: list[Any] = []

    async def start(**overrides: Any) -> Emulator:
        cm = run_emulator(EmulatorConfig(**{**FAST, **overrides}))
        emu = await cm.__aenter__()
        stack.append(cm)
        return emu

    yield start
    while stack:
        await stack.pop().__aexit__(None, None, None)


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OXEN_API_KEY", "OXEN_API_BASE") and "proxy" not in k.lower()
    }
    env.update(extra)
    return env


async def run_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    limit_s: float = 90,
    on_start: Callable[[asyncio.subprocess.Process], Awaitable[None]] | None = None,
) -> CliResult:
    """Run `python -m batchgen ARGS` to completion (bounded by `timeout`)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "batchgen",
        *args,
        cwd=cwd,
        env=env or clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    if on_start is not None:
        await on_start(proc)
    try:
        async with asyncio.timeout(limit_s):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


def api_args(emu: Emulator, *extra: str) -> list[str]:
    return [
        "--api-base",
        emu.base_url,
        "--api-key",
        emu.api_key,
        "--no-progress",
        "--stream-idle-timeout",
        "3",
        "--request-timeout",
        "5",
        *extra,
    ]

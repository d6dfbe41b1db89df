"""The API a command talks to: the one given (else the environment's), or the built-in emulator for the
length of a sandbox run."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable

from batchgen.config import DEFAULT_API_BASE
from batchgen.errors import UsageError

__all__ = ["SANDBOX_TIME_SCALE", "api_endpoint", "credentials"]

SANDBOX_TIME_SCALE = 0.01  # a two-minute render takes about a second in the sandbox


def credentials(api_base: str | None, api_key: str | None) -> tuple[str, str]:
    """The API origin and key: the ones given, else $OXEN_API_BASE and $OXEN_API_KEY (a key is required)."""
    key = api_key or os.environ.get("OXEN_API_KEY", "")
    if not key:
        raise UsageError(
            "no API key: pass api_key or set OXEN_API_KEY",
            cli="no API key: set OXEN_API_KEY (or pass --api-key), or try --sandbox",
        )
    return api_base or os.environ.get("OXEN_API_BASE") or DEFAULT_API_BASE, key


@contextlib.asynccontextmanager
async def api_endpoint(
    given: tuple[str, str] | None, say: Callable[[str], None]
) -> AsyncIterator[tuple[str, str]]:
    """The API to talk to: the one given, or a built-in emulator for the length of a sandbox run."""
    if given is not None:
        yield given
        return
    from batchgen.emulator import EmulatorConfig, run_emulator

    # A fresh seed each time: generation ids never repeat across sandbox sessions, as on the real service.
    config = EmulatorConfig(
        time_scale=SANDBOX_TIME_SCALE, auto_create_repos=True, seed=secrets.randbelow(2**31)
    )
    async with run_emulator(config) as emulator:
        say(f"sandbox: using the built-in emulator at {emulator.base_url} (nothing is paid)")
        yield emulator.base_url, emulator.api_key

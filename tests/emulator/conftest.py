"""Fixtures for the emulator tests: emulators on loopback, an HTTP session, an API client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from batchgen.emulator import Emulator, run_emulator
from batchgen.emulator.clock import Clock

from .support import Api, fast_config

EmulatorFactory = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def start() -> AsyncIterator[EmulatorFactory]:
    """Start emulators with ``await start(**config_fields)``; all are stopped after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(*, clock: Clock | None = None, **overrides: Any) -> Emulator:
            return await stack.enter_async_context(run_emulator(fast_config(**overrides), clock=clock))

        yield factory


@pytest.fixture
async def emu(start: EmulatorFactory) -> Emulator:
    return await start()


@pytest.fixture
def api(emu: Emulator, session: aiohttp.ClientSession) -> Iterator[Api]:
    client = Api(emu, session)
    yield client
    client.close()


@pytest.fixture
def make_api(
    start: EmulatorFactory, session: aiohttp.ClientSession
) -> Iterator[Callable[..., Awaitable[Api]]]:
    """``await make_api(**config_fields)``: an Api on a freshly started, custom emulator."""
    clients: list[Api] = []

    async def factory(**overrides: Any) -> Api:
        clients.append(Api(await start(**overrides), session))
        return clients[-1]

    yield factory
    for client in clients:
        client.close()

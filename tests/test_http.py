"""No session of batchgen sends a request twice by itself: aiohttp's own resend of an idempotent
request after a dropped connection (a PUT that committed, then lost its answer) is off."""

from __future__ import annotations

import aiohttp
import pytest

from batchgen.client.api import OxenClient, without_silent_resends
from batchgen.emulator import EmulatorConfig, FaultConfig, run_emulator
from batchgen.errors import ResponseLost

CHUNK = "PUT /api/repos/{namespace}/{repo}/versions/{version_id}/chunks"


async def test_a_put_whose_answer_is_cut_reaches_the_server_once() -> None:
    """A chunk PUT (stored, then its answer cut): aiohttp's default session sends it again by itself;
    batchgen's sessions send it once."""
    async with run_emulator(EmulatorConfig(faults=FaultConfig(upload_cut_rate=1.0))) as emu:
        emu.create_repo("team", "r")
        path = "/api/repos/team/r/versions/abc123/chunks?offset=0"
        headers = {"Authorization": f"Bearer {emu.api_key}"}
        async with aiohttp.ClientSession() as plain:  # aiohttp's default: sent again by itself
            with pytest.raises(aiohttp.ClientError):
                await plain.put(emu.base_url + path, data=b"bytes", headers=headers)
        resent = emu.counters.requests[CHUNK]
        async with aiohttp.ClientSession() as session:
            without_silent_resends(session)
            with pytest.raises(aiohttp.ClientError):
                await session.put(emu.base_url + path, data=b"bytes", headers=headers)
        async with OxenClient(emu.base_url, emu.api_key) as client:
            with pytest.raises(ResponseLost):
                await client.request("PUT", path, data=b"bytes")
        assert resent in (1, 2)  # 2 with aiohttp 3.14: why the switch exists
        assert emu.counters.requests[CHUNK] == resent + 2  # once each with it off
        assert emu.counters.chunks_received == resent + 2

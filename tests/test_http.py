"""No session of batchgen sends a request twice by itself: aiohttp's own resend of an idempotent
request after a dropped connection (a PUT that committed, then lost its answer) is off."""

from __future__ import annotations

import aiohttp
import pytest

from batchgen.api import OxenClient
from batchgen.emulator import EmulatorConfig, FaultConfig, run_emulator
from batchgen.errors import ResponseLost
from batchgen.http import without_silent_resends

UPLOAD = "PUT /api/repos/{namespace}/{repo}/file/{branch}/{path}"


def form() -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("files[]", b"bytes", filename="a.bin")
    for name in ("message", "name", "email"):
        data.add_field(name, "x")
    return data


async def test_a_put_whose_answer_is_cut_reaches_the_server_once() -> None:
    async with run_emulator(EmulatorConfig(faults=FaultConfig(upload_cut_rate=1.0))) as emu:
        emu.create_repo("team", "r")
        path = "/api/repos/team/r/file/main/d"
        headers = {"Authorization": f"Bearer {emu.api_key}"}
        async with aiohttp.ClientSession() as plain:  # aiohttp's default: sent again by itself
            with pytest.raises(aiohttp.ClientError):
                await plain.put(emu.base_url + path, data=form(), headers=headers)
        resent = emu.counters.requests[UPLOAD]
        async with aiohttp.ClientSession() as session:
            without_silent_resends(session)
            with pytest.raises(aiohttp.ClientError):
                await session.put(emu.base_url + path, data=form(), headers=headers)
        async with OxenClient(emu.base_url, emu.api_key) as client:
            with pytest.raises(ResponseLost):
                await client.request("PUT", path, data=form())
        assert resent in (1, 2)  # 2 with aiohttp 3.14: why the switch exists
        assert emu.counters.requests[UPLOAD] == resent + 2  # once each with it off
        assert len(emu.repo_commits("team", "r")) == resent + 2

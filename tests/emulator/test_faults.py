"""Fault knobs: each one on its own, changeable at runtime, reproducible with a seed."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from batchgen.emulator import FaultConfig
from batchgen.emulator.counters import Counters
from batchgen.emulator.faults import TRANSIENT_ERRORS, FaultInjector

from .support import Api, image, video


async def test_generation_failure_rate(make_api: Any) -> None:
    """generation_failure_rate=1: every generation fails with a transient-looking error_message."""
    api = await make_api(faults=FaultConfig(generation_failure_rate=1.0))
    stream = await api.events()
    ids = await api.enqueue(image(num_generations=3))
    await api.emu.wait_idle()
    for generation_id in ids:
        row = await api.row(generation_id)
        assert row["status"] == "failed"
        assert row["error_message"] in TRANSIENT_ERRORS
    assert (await stream.completion())["status"] == "failed"
    assert api.emu.counters.faults["generation_failure"] == 3
    stream.close()


async def test_rate_limit_429_with_retry_after_until_lifted(api: Api) -> None:
    """rate_limit_rate=1: API requests get 429 + Retry-After and create nothing; lifting it restores 200."""
    api.emu.set_faults(rate_limit_rate=1.0, rate_limit_retry_after_seconds=7)
    async with api.session.post(api.url("/api/ai/queue"), json=image(), headers=api.auth) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "7"
        payload = await resp.json()
    assert payload["status_message"] == "rate_limited"
    assert payload["error"]["title"] == "Rate limit exceeded"
    assert api.emu.counters.generations_enqueued == 0
    api.emu.set_faults(rate_limit_rate=0.0)
    assert len(await api.enqueue(image())) == 1


async def test_rate_limit_share_is_seeded(make_api: Any) -> None:
    """A 50% rate limit hits a share of requests, and the same seed hits the same ones."""

    async def pattern(api: Api) -> list[int]:
        return [(await api.request("GET", "/api/ai/queue"))[0] for _ in range(40)]

    faults = FaultConfig(rate_limit_rate=0.5)
    first = await pattern(await make_api(seed=3, faults=faults))
    second = await pattern(await make_api(seed=3, faults=faults))
    assert first == second
    assert 5 < first.count(429) < 35 and set(first) == {200, 429}


async def test_rate_limit_routes(api: Api) -> None:
    """rate_limit_routes limits only the named routes."""
    api.emu.set_faults(rate_limit_rate=1.0, rate_limit_routes=("POST /api/ai/queue",))
    assert (await api.request("POST", "/api/ai/queue", json=image()))[0] == 429
    assert (await api.request("GET", "/api/ai/queue"))[0] == 200
    assert (await api.request("GET", "/api/ai/models"))[0] == 200


async def test_rate_limit_storm_ends_when_faults_change(api: Api) -> None:
    """A 429 storm answers every API request with Retry-After = seconds left, until it is turned off."""
    api.emu.set_faults(rate_limit_burst_seconds=30)
    for _ in range(3):
        async with api.session.get(api.url("/api/ai/queue"), headers=api.auth) as resp:
            assert resp.status == 429
            assert 1 <= int(resp.headers["Retry-After"]) <= 30
    api.emu.set_faults(rate_limit_burst_seconds=0)
    assert (await api.request("GET", "/api/ai/queue"))[0] == 200
    assert api.emu.counters.faults["rate_limit_burst"] == 3


def test_rate_limit_bursts_repeat_every_period() -> None:
    """Storms of burst seconds start every period seconds (measured from when the faults were set)."""
    now = [100.0]
    injector = FaultInjector(
        FaultConfig(rate_limit_burst_seconds=2, rate_limit_burst_period_seconds=10),
        0,
        Counters(),
        monotonic=lambda: now[0],
    )
    timeline = {}
    for offset in (0.0, 1.5, 2.5, 9.9, 10.0, 11.2, 12.5):
        now[0] = 100.0 + offset
        timeline[offset] = injector.retry_after_for("GET /api/ai/queue")
    assert timeline == {0.0: 2, 1.5: 1, 2.5: None, 9.9: None, 10.0: 2, 11.2: 1, 12.5: None}


async def test_server_errors(api: Api) -> None:
    """server_error_rate=1 answers API requests with the configured 5xx and the unknown_error envelope."""
    api.emu.set_faults(server_error_rate=1.0, server_error_status=502)
    status, payload = await api.request("POST", "/api/ai/queue", json=image())
    assert status == 502
    assert payload["status_message"] == "unknown_error"
    assert api.emu.counters.generations_enqueued == 0


async def test_server_errors_per_endpoint(api: Api) -> None:
    """server_error_routes (route templates) confine 5xx to those endpoints."""
    generation_id = await api.enqueue_one(image())
    api.emu.set_faults(server_error_rate=1.0, server_error_routes=("/api/ai/queue/{generation_id}",))
    assert (await api.request("GET", f"/api/ai/queue/{generation_id}"))[0] == 503
    assert (await api.request("DELETE", f"/api/ai/queue/{generation_id}"))[0] == 503
    assert (await api.request("GET", "/api/ai/queue"))[0] == 200


async def test_downloads_and_repo_files_are_not_api_faulted(api: Api) -> None:
    """API faults (429/5xx) do not touch presigned downloads or public repo files."""
    row = await api.finished_row(image())
    api.emu.set_faults(server_error_rate=1.0, rate_limit_rate=1.0)
    async with api.session.get(row["result_url"]) as resp:
        assert resp.status == 200
    async with api.session.get(
        api.url("/api/repos/elau/assets/file/main/bloxy/bloxy_cropped_512x512.png")
    ) as resp:
        assert resp.status == 200


async def test_slow_responses(api: Api) -> None:
    """slow_response_rate=1 delays API answers by slow_response_seconds (real time)."""
    api.emu.set_faults(slow_response_rate=1.0, slow_response_seconds=0.2)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert (await api.request("GET", "/api/ai/queue"))[0] == 200
    assert loop.time() - began >= 0.2
    assert api.emu.counters.faults["slow_response"] == 1


async def test_enqueue_response_cut(api: Api) -> None:
    """enqueue_cut_rate=1: the connection closes with no response, yet the generation exists and counts."""
    api.emu.set_faults(enqueue_cut_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.request("POST", "/api/ai/queue", json=image(prompt="lost reply"))
    api.emu.set_faults(enqueue_cut_rate=0.0)
    assert api.emu.counters.generations_enqueued == 1
    assert api.emu.counters.enqueued_for(image(prompt="lost reply")) == 1
    await api.emu.wait_idle()
    _, payload = await api.request("GET", "/api/ai/queue", params={"status": "succeeded"})
    assert [row["prompt"] for row in payload["generations"]] == ["lost reply"]


async def test_sse_cut_after_events(make_api: Any) -> None:
    """sse_cut_after_events=1: the stream drops abruptly right after its first event."""
    api = await make_api(unrelated_event_every=0, faults=FaultConfig(sse_cut_after_events=1))
    stream = await api.events()
    await api.enqueue(image(num_generations=2))
    await stream.completion()
    with pytest.raises((aiohttp.ClientPayloadError, EOFError)):
        await stream.completion()
    assert api.emu.counters.faults["sse_cut"] == 1


async def test_sse_cut_once_after_events(make_api: Any) -> None:
    """sse_cut_once_after_events=2: the stream drops right after the second completion event, the
    reconnected stream is never cut, and changing other faults does not re-arm it."""
    api = await make_api(unrelated_event_every=0, faults=FaultConfig(sse_cut_once_after_events=2))
    stream = await api.events()
    await api.enqueue(image(num_generations=2))
    await stream.completion()
    await stream.completion()
    with pytest.raises((aiohttp.ClientPayloadError, EOFError)):
        await stream.completion()
    api.emu.set_faults(rate_limit_rate=0.0)
    again = await api.events()
    await api.enqueue(image(num_generations=3))
    statuses = [(await again.completion())["status"] for _ in range(3)]
    assert statuses == ["succeeded"] * 3
    assert api.emu.counters.faults["sse_cut"] == 1


async def test_sse_cut_every_seconds(make_api: Any) -> None:
    """sse_cut_every_seconds drops each stream after that many real seconds, even when idle."""
    api = await make_api(faults=FaultConfig(sse_cut_every_seconds=0.1))
    stream = await api.events()
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises((aiohttp.ClientPayloadError, EOFError)):
        await stream.frame()
    assert loop.time() - began >= 0.09
    again = await api.events()  # reconnecting works, and is cut again
    with pytest.raises((aiohttp.ClientPayloadError, EOFError)):
        await again.frame()


async def test_truncated_downloads(api: Api) -> None:
    """download_truncate_rate=1: full Content-Length announced, connection closed halfway."""
    row = await api.finished_row(video())
    api.emu.set_faults(download_truncate_rate=1.0)
    async with api.session.get(row["result_url"]) as resp:
        size = int(resp.headers["Content-Length"])
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert api.emu.counters.bytes_served == size // 2
    api.emu.set_faults(download_truncate_rate=0.0)
    async with api.session.get(row["result_url"]) as resp:
        assert len(await resp.read()) == size


async def test_short_length_downloads(api: Api) -> None:
    """download_short_length_rate=1: a complete, well-framed answer three quarters of the file long
    (a 206 keeps its honest Content-Range); counted as download_short_length."""
    row = await api.finished_row(video())
    size = api.emu.generation(row["generation_id"]).result.size  # type: ignore[union-attr]
    api.emu.set_faults(download_short_length_rate=1.0)
    async with api.session.get(row["result_url"]) as resp:
        body = await resp.read()
        assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(body) == size - size // 4
    async with api.session.get(row["result_url"], headers={"Range": "bytes=100-"}) as resp:
        body = await resp.read()
        assert resp.headers["Content-Range"] == f"bytes 100-{size - 1}/{size}"
        assert len(body) == (size - 100) - (size - 100) // 4
    assert api.emu.counters.faults["download_short_length"] == 2
    api.emu.set_faults(download_short_length_rate=0.0)
    async with api.session.get(row["result_url"]) as resp:
        assert len(await resp.read()) == size


async def test_slow_downloads(make_api: Any) -> None:
    """download_bytes_per_second throttles result downloads."""
    api = await make_api(result_size_bytes=20_000, faults=FaultConfig(download_bytes_per_second=50_000))
    row = await api.finished_row(video())
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with api.session.get(row["result_url"]) as resp:
        assert len(await resp.read()) == 20_000
    assert loop.time() - began >= 0.3


async def test_faults_setter_and_validation(api: Api) -> None:
    """faults can be replaced whole; set_faults validates and names the bad field."""
    api.emu.faults = FaultConfig(server_error_rate=1.0)
    assert (await api.request("GET", "/api/ai/queue"))[0] == 503
    api.emu.faults = FaultConfig()
    assert (await api.request("GET", "/api/ai/queue"))[0] == 200
    with pytest.raises(ValueError, match=r"FaultConfig\.rate_limit_rate"):
        api.emu.set_faults(rate_limit_rate=2)
    with pytest.raises(TypeError):
        api.emu.faults = {"rate_limit_rate": 1}  # type: ignore[assignment]
    assert api.emu.faults == FaultConfig()


async def test_all_faults_default_off(api: Api) -> None:
    """With default faults nothing is injected over a normal run."""
    stream = await api.events()
    await api.enqueue(video(num_generations=4))
    await api.emu.wait_idle()
    _, payload = await api.request("GET", "/api/ai/queue", params={"status": "succeeded"})
    assert payload["count"] == 4
    assert api.emu.counters.faults == {}
    stream.close()

"""Helpers shared by the emulator tests: constants, a fast config, an API client, an SSE reader."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from batchgen.emulator import Emulator, EmulatorConfig, LatencyConfig

KLING = "kling-video-o3-pro-reference-to-video"
OMNI = "kling-video-o3-omni"
T2V = "kling-video-v2-6-pro-text-to-video"
FLUX = "flux-2-pro"
KLEIN = "black-forest-labs-flux-2-klein-4b"
CHAT = "gpt-4o-mini"
EXAMPLE_IMAGE = "https://hub.oxen.ai/api/repos/elau/assets/file/main/bloxy/bloxy_cropped_512x512.png"

# Simulated minutes become real milliseconds.
FAST = 0.001
# Videos render for a simulated day (86 real seconds at FAST): they stay 'processing' for the
# whole test, while images still finish in ~15 ms.
SLOW_VIDEO = LatencyConfig(video_render_median_seconds=86_400, latency_sigma=0.0)


def fast_config(**overrides: Any) -> EmulatorConfig:
    """A config for tests: scaled time, everything else as given."""
    values: dict[str, Any] = {"time_scale": FAST}
    values.update(overrides)
    return EmulatorConfig(**values)


def video(prompt: str = "An astronaut walking on Mars", **extra: Any) -> dict[str, Any]:
    return {"model": KLING, "prompt": prompt, **extra}


def image(prompt: str = "A red cube", **extra: Any) -> dict[str, Any]:
    return {"model": FLUX, "prompt": prompt, **extra}


class Api:
    """A thin authenticated client for one emulator."""

    def __init__(self, emulator: Emulator, session: aiohttp.ClientSession) -> None:
        self.emu = emulator
        self.session = session
        self.auth = {"Authorization": f"Bearer {emulator.api_key}"}
        self.streams: list[SseReader] = []

    def url(self, path: str) -> str:
        return self.emu.base_url + path

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        async with self.session.request(method, self.url(path), headers=headers, **kwargs) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    async def enqueue(self, body: dict[str, Any]) -> list[str]:
        status, payload = await self.request("POST", "/api/ai/queue", json=body)
        assert status == 200, payload
        return [g["generation_id"] for g in payload["generations"]]

    async def enqueue_one(self, body: dict[str, Any]) -> str:
        (generation_id,) = await self.enqueue(body)
        return generation_id

    async def row(self, generation_id: str) -> dict[str, Any]:
        status, payload = await self.request("GET", f"/api/ai/queue/{generation_id}")
        assert status == 200, payload
        return dict(payload)

    async def finished_row(self, body: dict[str, Any]) -> dict[str, Any]:
        """Enqueue one generation, wait until it is terminal, return its queue row."""
        generation_id = await self.enqueue_one(body)
        await self.emu.wait_for_status(generation_id)
        return await self.row(generation_id)

    async def events(self) -> SseReader:
        resp = await self.session.get(self.url("/api/events"), headers=self.auth)
        assert resp.status == 200
        self.streams.append(SseReader(resp))
        return self.streams[-1]

    def close(self) -> None:
        """Release every SSE response this client opened."""
        for stream in self.streams:
            stream.close()


class SseReader:
    """Parses an SSE response into (event name, data) pairs and comment lines."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.raw: list[str] = []

    async def frame(self) -> list[str]:
        """The lines of the next frame (up to a blank line)."""
        lines: list[str] = []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("stream ended")
            line = raw.decode().rstrip("\n")
            self.raw.append(line)
            if line == "":
                return lines
            lines.append(line)

    async def event(self) -> tuple[str, dict[str, Any]]:
        """The next event (comments skipped) as (name, parsed data)."""
        while True:
            lines = await self.frame()
            if lines and all(line.startswith(":") for line in lines):
                continue
            assert len(lines) == 2, lines
            assert lines[0].startswith("event: ") and lines[1].startswith("data: "), lines
            return lines[0][len("event: ") :], json.loads(lines[1][len("data: ") :])

    async def completion(self) -> dict[str, Any]:
        """The next media_generation_completed payload, skipping other event types."""
        while True:
            name, data = await self.event()
            if name == "media_generation_completed":
                return data

    def close(self) -> None:
        self.response.close()

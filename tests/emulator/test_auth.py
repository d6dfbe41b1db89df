"""Authentication: which routes need the Bearer key, and the 401 envelope."""

from __future__ import annotations

import aiohttp
import pytest

from batchgen.emulator import Emulator

from .support import EXAMPLE_IMAGE, KLING

UNAUTHENTICATED = {
    "error": {"type": "unauthenticated", "title": "Unauthenticated. Please provide a valid API key."},
    "status": "error",
    "status_message": "unauthenticated",
}
PROTECTED = [
    ("POST", "/api/ai/queue"),
    ("GET", "/api/ai/queue"),
    ("GET", "/api/ai/queue/00000000-0000-4000-8000-000000000000"),
    ("DELETE", "/api/ai/queue/00000000-0000-4000-8000-000000000000"),
    ("GET", "/api/ai/generations"),
    ("GET", "/api/ai/generations/00000000-0000-4000-8000-000000000000"),
    ("GET", "/api/events"),
    ("POST", "/api/repos"),
    ("PUT", "/api/repos/elau/assets/file/main/x.png"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic emulator-key", "emulator-key"])
async def test_protected_routes_answer_401_envelope(
    emu: Emulator, session: aiohttp.ClientSession, method: str, path: str, header: str | None
) -> None:
    """API, events and upload routes answer 401 with the unauthenticated envelope without a valid key."""
    headers = {} if header is None else {"Authorization": header}
    async with session.request(method, emu.base_url + path, headers=headers, json={"model": KLING}) as resp:
        assert resp.status == 401
        assert await resp.json() == UNAUTHENTICATED
    assert emu.counters.generations_enqueued == 0


async def test_bearer_scheme_is_case_insensitive(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """'bearer <key>' is accepted like 'Bearer <key>'."""
    headers = {"Authorization": f"bearer {emu.api_key}"}
    async with session.get(emu.base_url + "/api/ai/queue", headers=headers) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    "path", ["/api/ai/models", "/api/ai/models/search?search=kling", f"/api/ai/models/{KLING}"]
)
async def test_models_answer_without_key(emu: Emulator, session: aiohttp.ClientSession, path: str) -> None:
    """The models endpoints answer without a key (as a third party reports of the real API)."""
    async with session.get(emu.base_url + path) as resp:
        assert resp.status == 200


async def test_models_reject_a_wrong_key(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """A key that is sent must be valid, even on the models endpoints."""
    async with session.get(emu.base_url + "/api/ai/models", headers={"Authorization": "Bearer nope"}) as resp:
        assert resp.status == 401
        assert await resp.json() == UNAUTHENTICATED


async def test_public_repo_file_needs_no_key(emu: Emulator, session: aiohttp.ClientSession) -> None:
    """GET of a public repo file (the docs' example asset) needs no key."""
    url = EXAMPLE_IMAGE.replace("https://hub.oxen.ai", emu.base_url)
    async with session.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == "image/png"
        assert (await resp.read()).startswith(b"\x89PNG\r\n\x1a\n")


async def test_custom_api_key(start: object, session: aiohttp.ClientSession) -> None:
    """The accepted key is configurable and exposed as emu.api_key."""
    emulator = await start(api_key="s3cret")  # type: ignore[operator]
    assert emulator.api_key == "s3cret"
    async with session.get(
        emulator.base_url + "/api/ai/queue", headers={"Authorization": "Bearer s3cret"}
    ) as resp:
        assert resp.status == 200

"""The API client against a scripted aiohttp server: error mapping, auth scope, shared 429 pause."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from batchgen.client.api import OxenClient, Throttle, error_detail
from batchgen.config import RetryPolicy, Timeouts
from batchgen.errors import (
    ApiStatusError,
    ConnectFailed,
    InsufficientCredits,
    NotFound,
    RateLimited,
    ResponseLost,
    Unauthenticated,
)

NOT_FOUND = {
    "error": {"type": "resource_not_found", "title": "The requested resource could not be found"},
    "status": "error",
    "status_message": "resource_not_found",
}


async def serve(routes: list[web.RouteDef]) -> TestServer:
    app = web.Application()
    app.add_routes(routes)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def client_for(server: TestServer, **kwargs: Any) -> OxenClient:
    return OxenClient(
        str(server.make_url("")).rstrip("/"), "sekret-key", timeouts=Timeouts(request_s=2), **kwargs
    )


@pytest.mark.parametrize(
    ("status", "body", "error", "detail"),
    [
        (404, NOT_FOUND, NotFound, "The requested resource could not be found"),
        (
            401,
            {
                "error": {"type": "unauthenticated", "title": "Unauthenticated"},
                "status": "error",
                "status_message": "unauthenticated",
            },
            Unauthenticated,
            "Unauthenticated",
        ),
        (
            402,
            {"error": {"type": "insufficient_credits", "title": "Insufficient credits"}},
            InsufficientCredits,
            "Insufficient credits",
        ),
        (400, {"error": {"message": "Insufficient credits"}}, InsufficientCredits, "Insufficient credits"),
        (  # the phrase in a field the message is not taken from: still the credits, not a refused job
            403,
            {"error": {"type": "insufficient_credits", "detail": "Your balance is too low"}},
            InsufficientCredits,
            "Your balance is too low",
        ),
        (
            400,
            {"error": {"title": "Bad request", "detail": "Insufficient credits for 4k"}},
            InsufficientCredits,
            "Insufficient credits for 4k",
        ),
        # a 5xx or a 408 may have created the generation whatever its text says: looked up, not refused
        (503, {"error": {"message": "Insufficient credits"}}, ApiStatusError, "Insufficient credits"),
        (408, {"error": {"message": "Insufficient credits"}}, ApiStatusError, "Insufficient credits"),
        # only a refusal's text is read for credits: a 404 naming such a path stays a 404
        (
            404,
            {"error": {"message": "Could not find path: insufficient_credits.png"}},
            NotFound,
            "insufficient_credits.png",
        ),
        (404, {"error": {"message": "Model not found: nope"}}, NotFound, "Model not found: nope"),
        (
            400,
            {
                "error": {
                    "type": "invalid_params",
                    "title": "Invalid",
                    "detail": "num_generations must be an integer between 1 and 4",
                }
            },
            ApiStatusError,
            "num_generations must be an integer between 1 and 4",
        ),
    ],
)
async def test_error_envelopes_map_to_specific_errors(
    status: int, body: dict[str, Any], error: type[Exception], detail: str
) -> None:
    """Both documented error envelopes become the most specific error, with the server's text."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    server = await serve([web.post("/api/ai/queue", handler)])
    try:
        async with client_for(server) as client:
            with pytest.raises(error) as info:
                await client.enqueue({"model": "m"})
    finally:
        await server.close()
    assert isinstance(info.value, ApiStatusError | Unauthenticated)  # a 401 is no ApiError: it ends the run
    assert type(info.value) is error  # the most specific one, not a subclass of it
    assert detail in info.value.detail
    assert "sekret-key" not in str(info.value)


async def test_key_is_sent_to_the_api_origin_only() -> None:
    """The Authorization header goes with API calls, never to another origin's URL."""
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"generations": [{"generation_id": "g", "status": "queued"}]})

    server = await serve([web.post("/api/ai/queue", handler)])
    try:
        async with client_for(server) as client:
            assert await client.enqueue({"model": "m"}) == ["g"]
            assert client.auth_for("http://other.example/api/x") == {}
    finally:
        await server.close()
    assert seen == ["Bearer sekret-key"]


async def test_a_cut_response_is_maybe_sent_and_a_refused_connection_is_not() -> None:
    """A connection closed before the answer is ResponseLost; nothing listening is ConnectFailed."""

    async def cut(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    server = await serve([web.post("/api/ai/queue", cut)])
    base = str(server.make_url("")).rstrip("/")
    try:
        async with OxenClient(base, "k") as client:
            with pytest.raises(ResponseLost):
                await client.enqueue({"model": "m"})
    finally:
        await server.close()
    async with OxenClient(base, "k") as client:  # the port is closed now
        with pytest.raises(ConnectFailed):
            await client.enqueue({"model": "m"})


async def test_a_429_pauses_every_caller_for_retry_after() -> None:
    """After one 429 with Retry-After, no call is sent until the pause ends, then calls succeed."""
    arrivals: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "0.4"})
        return web.json_response({"count": 0, "generations": []})

    server = await serve([web.get("/api/ai/queue", handler)])
    try:
        async with client_for(server, retry=RetryPolicy(initial_s=0.01)) as client:
            with pytest.raises(RateLimited) as info:
                await client.request("GET", "/api/ai/queue")
            told = time.monotonic()
            results = await asyncio.gather(*(client.list_queue() for _ in range(4)))
    finally:
        await server.close()
    assert info.value.retry_after == 0.4
    assert results == [[]] * 4
    assert len(arrivals) == 5  # nothing was sent, and then failed, during the pause
    assert all(t - told >= 0.35 for t in arrivals[1:])


async def test_throttle_accumulates_and_reports_remaining_time() -> None:
    """pause() only ever extends the shared deadline."""
    now = [100.0]
    throttle = Throttle(clock=lambda: now[0])
    throttle.pause(5)
    throttle.pause(2)
    assert throttle.remaining() == 5
    now[0] = 104
    assert throttle.remaining() == 1


def test_error_detail_reads_every_envelope_shape() -> None:
    """Error text is found in either documented envelope or a bare message."""
    assert error_detail({"error": "boom"}, "x") == "boom"
    assert error_detail({"error": {"title": "T", "detail": "D"}}, "x") == "D"
    assert error_detail({"error_message": "E"}, "x") == "E"
    assert error_detail(None, "fallback") == "fallback"


async def test_get_model_returns_the_parsed_answer_whatever_its_shape() -> None:
    """get_model hands back the parsed JSON unchecked (a list stays a list), unwraps {"data": {...}},
    and an answer nested too deeply for json.loads becomes an error mapping, not RecursionError."""
    answers = {
        "list": b'[{"id": "m"}]',
        "wrapped": b'{"data": {"id": "m"}}',
        "null": b"null",
        "deep": b"[" * 100_000 + b"]" * 100_000,
    }

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=answers[request.match_info["id"]], content_type="application/json")

    server = await serve([web.get("/api/ai/models/{id}", handler)])
    try:
        async with client_for(server) as client:
            assert await client.get_model("list") == [{"id": "m"}]
            assert await client.get_model("wrapped") == {"id": "m"}
            assert await client.get_model("null") is None
            assert await client.get_model("deep") == {"error": "the answer is JSON nested too deeply to read"}
    finally:
        await server.close()

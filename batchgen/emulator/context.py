"""What the gateway learns about a request and hands to its handler: the matched route's key, the
route's parameters as oxen-server would read them, the request body (possibly already read by the
proxy cap), and a slow-response stall the handler serves once it has read that body.
"""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import StreamReader, web

ROUTE_KEY = web.RequestKey("batchgen_emulator_route_key", str)
RAW_PARAMS = web.RequestKey("batchgen_emulator_raw_params", dict[str, str])
STALL_SECONDS = web.RequestKey("batchgen_emulator_stall_seconds", float)
BODY_PREFETCHED = web.RequestKey("batchgen_emulator_body_prefetched", bool)


def route_key(request: web.Request) -> str:
    """The matched route as ``"METHOD /template"`` (set by the gateway)."""
    key: str = request.get(ROUTE_KEY, f"{request.method} <unmatched>")
    return key


def path_param(request: web.Request, name: str) -> str:
    """A route parameter as oxen-server's ``path_param`` reads it: decoded by actix-router, which
    leaves ``%25``, ``%2F`` and ``%2B`` encoded (aiohttp's own ``match_info`` decodes them)."""
    raw: dict[str, str] = request.get(RAW_PARAMS, {})
    return raw[name] if name in raw else request.match_info[name]


async def body_stream(request: web.Request) -> StreamReader:
    """The request body as a stream, whether or not the proxy cap already read it into memory."""
    if BODY_PREFETCHED not in request:
        return request.content
    body = await request.read()
    # A limit above the body's size: feeding it must not pause the real connection's reading.
    stream = StreamReader(request.protocol, max(2**16, len(body)), loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    return stream


async def stall(request: web.Request) -> None:
    """Serve the slow-response fault the gateway left for this handler (after it read the body, as a
    server slow to *process* a request would be: a client that gives up meanwhile finds the work done)."""
    if STALL_SECONDS in request:
        await asyncio.sleep(request[STALL_SECONDS])


def carries_key(request: web.Request, key: str) -> bool:
    """Whether the request is sent with the API key (`Authorization: Bearer KEY`)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), key.encode())

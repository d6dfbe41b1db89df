"""What oxen-server's HTTP stack (actix-web 4.13, actix-router 0.5.4) makes of a request before its
handler runs: the partly decoded path its ``path_param`` reads, ``usize`` query parameters, a
``String`` body under a size limit, and the plain-text answers actix gives when one of them fails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web

from batchgen.emulator.context import body_stream

# actix-router's default Quoter decodes every %XX in the path except these three bytes.
_PROTECTED = frozenset(b"%/+")
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")
_PLACEHOLDER = re.compile(r"\{(?P<name>\w+)(?::(?P<pattern>[^{}]*))?\}")
_USIZE_MAX = 2**64 - 1

STRING_BODY_LIMIT = 256 * 1024  # actix-web's default PayloadConfig limit, which String bodies obey
PAYLOAD_OVERFLOW = "payload reached size limit"  # actix-http PayloadError::Overflow, answered 413


def router_decode(raw_path: str) -> str:
    """The path as actix-router matches it: percent-decoded, except ``%25``, ``%2F`` and ``%2B``.

    Undecodable bytes become U+FFFD, as ``String::from_utf8_lossy`` does.
    """

    def decode(match: re.Match[bytes]) -> bytes:
        byte = int(match.group(1), 16)
        return match.group(0) if byte in _PROTECTED else bytes([byte])

    return _ESCAPE.sub(decode, raw_path.encode("utf-8", "surrogateescape")).decode("utf-8", "replace")


def route_regex(template: str) -> re.Pattern[str]:
    """A regex matching ``template`` (aiohttp's ``{name}`` / ``{name:regex}`` syntax) whose groups are
    the route's parameters."""
    pieces, position = [], 0
    for match in _PLACEHOLDER.finditer(template):
        pieces.append(re.escape(template[position : match.start()]))
        pieces.append(f"(?P<{match['name']}>{match['pattern'] or '[^{}/]+'})")
        position = match.end()
    pieces.append(re.escape(template[position:]))
    return re.compile("".join(pieces))


def path_params(pattern: re.Pattern[str], raw_path: str) -> dict[str, str]:
    """The route's parameters as oxen-server's ``path_param`` returns them (no further decoding)."""
    match = pattern.fullmatch(router_decode(raw_path))
    return {} if match is None else match.groupdict()


def plain(status: int, text: str) -> web.Response:
    """An error as actix's default ``ResponseError`` writes it: the message as ``text/plain``."""
    return web.Response(status=status, text=text, content_type="text/plain")


def parse_usize(raw: str) -> int | str:
    """``raw`` as Rust's ``str::parse::<usize>`` reads it (64-bit), or its error message."""
    digits = raw[1:] if raw.startswith("+") else raw
    if not raw:
        return "cannot parse integer from empty string"
    if not digits.isascii() or not digits.isdigit():
        return "invalid digit found in string"
    value = int(digits)
    return value if value <= _USIZE_MAX else "number too large to fit in target type"


def query_usizes(query: Mapping[str, str], *names: str) -> dict[str, int | None] | web.Response:
    """Optional ``usize`` query parameters, or the 400 actix's ``Query`` extractor answers when one
    does not parse (before the handler, so before any 404)."""
    values: dict[str, int | None] = {}
    for name in names:
        raw = query.get(name)
        parsed = None if raw is None else parse_usize(raw)
        if isinstance(parsed, str):
            return plain(400, f"Query deserialize error: {parsed}")
        values[name] = parsed
    return values


async def read_string_body(request: web.Request, limit: int = STRING_BODY_LIMIT) -> str | web.Response:
    """The body as actix's ``String`` extractor reads it, or its plain-text refusal: 413 past ``limit``
    (at once when Content-Length says so), 400 when it is not UTF-8."""
    if request.content_length is not None and request.content_length > limit:
        return plain(413, PAYLOAD_OVERFLOW)
    body = bytearray()
    async for piece in (await body_stream(request)).iter_any():
        if len(body) + len(piece) > limit:
            return plain(413, PAYLOAD_OVERFLOW)
        body += piece
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return plain(400, "Can not decode body")

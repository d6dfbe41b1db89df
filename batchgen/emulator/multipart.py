"""Multipart bodies read one part at a time, as actix-multipart 0.7.2 reads them for oxen-server.

Each part's Content-Disposition is parsed as actix-web's ``ContentDisposition::from_raw`` does, not
as aiohttp does: a plain ``filename`` is taken as sent (never percent-decoded, no leading ``/``
stripped), and ``filename*`` is not a filename at all. A body actix cannot read raises
``MultipartRefusal`` with actix's status and message; each route words the answer its own way.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from batchgen.emulator.context import body_stream

READ_CHUNK = 256 * 1024
# What aiohttp's reader raises on a body it cannot parse (truncated, bad boundary or headers).
_UNREADABLE = (ValueError, RuntimeError, AssertionError, HttpProcessingError)
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")

NO_DISPOSITION = 'Content-Disposition header was not found when parsing a "form-data" field'
INCOMPLETE = "Multipart stream is incomplete"
OVERFLOW = "Payload error"  # MultipartError::Payload(PayloadError::Overflow), a form over its limits


class MultipartRefusal(Exception):
    """A body actix-multipart refuses: ``status`` and its ``Display`` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Disposition:
    kind: str  # lower-cased disposition type, e.g. "form-data"
    name: str | None
    filename: str | None


@dataclass(frozen=True)
class Part:
    """One part of the body, not read yet."""

    reader: BodyPartReader
    name: str | None
    filename: str | None
    content_type: str | None  # the part's Content-Type header, as sent


def _split_trim(text: str, needle: str) -> tuple[str, str]:
    first, _, last = text.partition(needle)
    return first.rstrip(), last.lstrip()


def _quoted(text: str) -> tuple[str, str] | None:
    """A quoted-string at the start of ``text`` (backslash escapes undone) and what follows the next
    ``;``; None without a closing quote."""
    value, escaping = [], False
    for index in range(1, len(text)):
        char = text[index]
        if escaping:
            escaping = False
            value.append(char)
        elif char == "\\":
            escaping = True
        elif char == '"':
            return "".join(value), _split_trim(text[index + 1 :], ";")[1]
        else:
            value.append(char)
    return None


def _extended_value_ok(value: str) -> bool:
    """Whether actix's ``parse_extended_value`` accepts ``charset'language'value``."""
    pieces = value.split("'", 2)
    return len(pieces) == 3 and (not pieces[1] or bool(_LANGUAGE_TAG.fullmatch(pieces[1])))


def parse_disposition(header: str) -> Disposition | None:
    """``ContentDisposition::from_raw``; None where actix fails to parse the header."""
    try:
        header.encode("utf-8")
    except UnicodeEncodeError:
        return None  # bytes that were not UTF-8 (aiohttp keeps them as surrogates)
    kind, left = _split_trim(header.strip(), ";")
    if not kind:
        return None
    name = filename = None
    while left:
        param, left = _split_trim(left, "=")
        if not param or param == "*" or not left:
            return None
        if param.endswith("*"):
            extended, left = _split_trim(left, ";")
            if not _extended_value_ok(extended):
                return None
            continue  # filename* is DispositionParam::FilenameExt: get_filename() ignores it
        if left.startswith('"'):
            quoted = _quoted(left)
            if quoted is None:
                return None
            value, left = quoted
        else:
            value, left = _split_trim(left, ";")
            if not value:
                return None
        if param.lower() == "name" and name is None:
            name = value
        elif param.lower() == "filename" and filename is None:
            filename = value
    return Disposition(kind.lower(), name, filename)


async def open_reader(request: web.Request, *, form_data_only: bool) -> tuple[MultipartReader, bool]:
    """A reader of the body, and whether it is ``multipart/form-data`` (whose parts must all carry a
    ``form-data`` disposition with a name). ``form_data_only``: refuse other multipart types, as the
    ``MultipartForm`` extractor does."""
    if hdrs.CONTENT_TYPE not in request.headers:
        raise MultipartRefusal(400, "Could not find Content-Type header")
    if request.content_type.partition("/")[0] != "multipart":
        raise MultipartRefusal(415, 'Parsed Content-Type did not have "multipart" top-level media type')
    form_data = request.content_type == "multipart/form-data"
    if form_data_only and not form_data:
        raise MultipartRefusal(415, 'Parsed Content-Type did not have "multipart" top-level media type')
    try:
        return MultipartReader(request.headers, await body_stream(request)), form_data
    except (ValueError, AssertionError) as exc:
        raise MultipartRefusal(400, "Multipart boundary is not found") from exc


async def parts(reader: MultipartReader, *, form_data: bool) -> AsyncIterator[Part]:
    """Every part in order; the previous one is skipped unread when the next is asked for."""
    while True:
        try:
            item = await reader.next()
        except _UNREADABLE as exc:
            raise MultipartRefusal(400, INCOMPLETE) from exc
        if item is None:
            return
        if not isinstance(item, BodyPartReader):
            raise MultipartRefusal(400, "Nested multipart is not supported")
        raw = item.headers.get(hdrs.CONTENT_DISPOSITION)
        disposition = None if raw is None else parse_disposition(raw)
        if disposition is not None and disposition.kind != "form-data":
            disposition = None
        if form_data and (disposition is None or disposition.name is None):
            raise MultipartRefusal(400, NO_DISPOSITION)
        yield Part(
            item,
            None if disposition is None else disposition.name,
            None if disposition is None else disposition.filename,
            item.headers.get(hdrs.CONTENT_TYPE),
        )


async def read_part(part: Part, consume: Callable[[int], None] | None = None) -> bytes:
    """A part's bytes; ``consume`` is told each piece's size before it is kept (it raises to refuse)."""
    pieces: list[bytes] = []
    try:
        while piece := await part.reader.read_chunk(READ_CHUNK):
            if consume is not None:
                consume(len(piece))
            pieces.append(piece)
    except _UNREADABLE as exc:
        raise MultipartRefusal(400, INCOMPLETE) from exc
    return b"".join(pieces)

"""The form of ``PUT .../file/...`` read as oxen-server's ``MultipartForm<FileUploadBody>`` extractor
reads it (``controllers/file.rs``; actix-multipart 0.7.2 ``form/mod.rs``), before anything else:

- ``name``, ``email`` and ``message`` are text fields; only the first ``file`` part is kept, every
  ``files[]`` part is; other parts and repeated fields are skipped unread.
- Every byte kept, file data and text alike, counts as in memory: past the memory limit (2 MiB by
  default) or 50 MiB in all, the form is refused with 400 ``Payload error`` as plain text, on the
  piece that crosses the limit, so no more than the limit is ever held.
- A part's file name goes through ``sanitize_filename``; a part without one gets a UUID.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.helpers import parse_mimetype

from batchgen.emulator.actix import plain
from batchgen.emulator.multipart import OVERFLOW, MultipartRefusal, Part, open_reader, parts, read_part
from batchgen.emulator.oxen_paths import sanitize_filename

TOTAL_LIMIT = 50 * 1024 * 1024  # actix-multipart's default MultipartFormConfig
TEXT_FIELDS = ("name", "email", "message")


@dataclass(frozen=True)
class UploadedFile:
    filename: str  # sanitized, or a UUID when the part had none
    data: bytes
    content_type: str | None


@dataclass
class UploadForm:
    text: dict[str, str] = field(default_factory=dict)  # name / email / message, when sent
    file: UploadedFile | None = None
    files: list[UploadedFile] = field(default_factory=list)  # files[]


class _Limits:
    """actix-multipart's ``Limits``, every part consumed as in memory (``controllers/file.rs``)."""

    def __init__(self, memory_limit: int | None) -> None:
        self.total_left = TOTAL_LIMIT
        self.memory_left = memory_limit

    def consume(self, size: int) -> None:
        self.total_left -= size
        if self.memory_left is not None:
            self.memory_left -= size
        if self.total_left < 0 or (self.memory_left is not None and self.memory_left < 0):
            raise MultipartRefusal(400, OVERFLOW)


def _is_plain_text(content_type: str | None) -> bool:
    """actix ``Text``'s check: no Content-Type (text/plain by RFC 7578), or a ``plain`` subtype."""
    if content_type is None:
        return True
    mime = parse_mimetype(content_type)
    return mime.subtype == "plain" or mime.suffix == "plain"


async def _text(part: Part, limits: _Limits) -> str:
    field_error = MultipartRefusal(400, f"An error occurred processing field: {part.name}")
    if not _is_plain_text(part.content_type):
        raise field_error
    data = await read_part(part, limits.consume)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise field_error from None


async def _file(part: Part, limits: _Limits) -> UploadedFile:
    name = sanitize_filename(part.filename) if part.filename is not None else str(uuid.uuid4())
    return UploadedFile(name, await read_part(part, limits.consume), part.content_type)


async def _collect(request: web.Request, memory_limit: int | None) -> UploadForm:
    reader, form_data = await open_reader(request, form_data_only=True)
    form, limits = UploadForm(), _Limits(memory_limit)
    async for part in parts(reader, form_data=form_data):
        if part.name in TEXT_FIELDS and part.name not in form.text:
            form.text[part.name] = await _text(part, limits)
        elif part.name == "file" and form.file is None:
            form.file = await _file(part, limits)
        elif part.name == "files[]":
            form.files.append(await _file(part, limits))
    return form


async def read_upload_form(request: web.Request, memory_limit: int | None) -> UploadForm | web.Response:
    """The form, or actix's plain-text refusal of it."""
    try:
        return await _collect(request, memory_limit)
    except MultipartRefusal as refusal:
        return plain(refusal.status, refusal.message)

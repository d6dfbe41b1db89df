"""Server-Sent Events parsing: bytes in, `ServerSentEvent`s out, incrementally and with no I/O.

Follows the WHATWG HTML "event stream interpretation" rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
UTF-8 with one leading BOM stripped, lines ended by CRLF, LF or CR, `event`/`data`/`id`/`retry`
fields, comments ignored, dispatch on a blank line, an unterminated last event discarded.

Two pure pieces: `SSELineDecoder` (text → lines) and `SSEDecoder` (bytes → events). The I/O
adapter that feeds `resp.content.iter_any()` chunks to `SSEDecoder.feed` lives with the HTTP client.

Neither holds more than `MAX_EVENT_SIZE` characters of one line or one event: past it they raise
`SSELimitExceeded`, and the caller drops the connection (the rest of that stream cannot be trusted).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["MAX_EVENT_SIZE", "SSEDecoder", "SSELimitExceeded", "SSELineDecoder", "ServerSentEvent"]

#: The longest line, and the largest event (its data lines together), in characters, that a decoder
#: holds. A completion event is a few hundred bytes; a stream that sends a megabyte without ending a
#: line or an event is broken or hostile, and buffering it would take memory without bound.
MAX_EVENT_SIZE = 1024 * 1024

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_DIGITS = re.compile(r"[0-9]+")
_BOM = "\ufeff"


class SSELimitExceeded(ValueError):
    """A line or an event grew past the decoder's limit; drop the connection (the decoder is spent)."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event. `id` is the stream's last event ID (None until an `id:` field is seen)."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSELineDecoder:
    """Splits text into lines on CRLF, LF or CR only, carrying partial lines across chunks.

    A CR that ends a chunk ends its line at once (no waiting for the next chunk); a LF at the start
    of the next chunk is then swallowed, so a CRLF split across two chunks is one line break.
    A line longer than `max_line` characters raises `SSELimitExceeded` before it is buffered.
    """

    def __init__(self, max_line: int = MAX_EVENT_SIZE) -> None:
        self._partial: list[str] = []
        self._partial_size = 0
        self._skip_lf = False
        self._max_line = max_line

    def decode(self, text: str) -> list[str]:
        """Return the lines completed by `text`, without their line breaks."""
        if self._skip_lf and text:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return []
        self._skip_lf = text[-1] == "\r"
        parts = _LINE_BREAK.split(text)
        if len(parts) == 1:
            self._hold(text)
            return []
        if self._partial:
            self._hold(parts[0])
            parts[0] = "".join(self._partial)
        tail = parts.pop()
        self._partial, self._partial_size = [], 0
        if any(len(part) > self._max_line for part in parts):
            self._too_long()
        self._hold(tail)
        return parts

    def _hold(self, text: str) -> None:
        if self._partial_size + len(text) > self._max_line:
            self._too_long()
        if text:
            self._partial.append(text)
            self._partial_size += len(text)

    def _too_long(self) -> None:
        self._partial, self._partial_size = [], 0
        raise SSELimitExceeded(f"a line longer than {self._max_line} characters")

    def flush(self) -> list[str]:
        """At end of input: return the unterminated last line, if any, and reset."""
        line = "".join(self._partial)
        self._partial, self._partial_size = [], 0
        self._skip_lf = False
        return [line] if line else []


class SSEDecoder:
    """Turns an event-stream byte stream into events: `feed(bytes) → list`, `close() → list`.

    Besides events it keeps what reconnect logic needs: `last_event_id` (for a `Last-Event-ID` header)
    and `retry` (the server's reconnection time, ms).

    A line or an event (its data lines, joined) longer than `max_size` characters raises
    `SSELimitExceeded`, having buffered at most that much; the decoder must not be fed again.
    """

    def __init__(self, max_size: int = MAX_EVENT_SIZE) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lines = SSELineDecoder(max_size)
        self._max_size = max_size
        self._at_start = True
        self._closed = False
        self._event = ""
        self._data: list[str] = []
        self._data_size = 0
        self._retry_in_event: int | None = None
        self.last_event_id: str | None = None
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decode one chunk of the stream; return the events it completed (often none)."""
        if self._closed:
            raise RuntimeError("SSEDecoder.feed() called after close()")
        return self._decode_lines(self._lines.decode(self._decode_text(data, final=False)))

    def close(self) -> list[ServerSentEvent]:
        """End of stream: finish decoding; an event with no terminating blank line is discarded."""
        if self._closed:
            return []
        lines = self._lines.decode(self._decode_text(b"", final=True)) + self._lines.flush()
        self._closed = True
        events = self._decode_lines(lines)
        self._reset_event()
        return events

    def _decode_text(self, data: bytes, *, final: bool) -> str:
        text = self._text.decode(data, final)
        if self._at_start and text:
            self._at_start = False
            if text[0] == _BOM:
                text = text[1:]
        return text

    def _decode_lines(self, lines: list[str]) -> list[ServerSentEvent]:
        return [event for line in lines if (event := self.decode_line(line)) is not None]

    def decode_line(self, line: str) -> ServerSentEvent | None:
        """Process one line (without its line break); return the event a blank line dispatches."""
        if not line:
            return self._dispatch()
        if line[0] == ":":  # a comment (`: keep-alive`)
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        self._set_field(name, value)
        return None

    def _set_field(self, name: str, value: str) -> None:
        if name == "event":
            self._event = value
        elif name == "data":
            self._data_size += len(value) + (1 if self._data else 0)  # the size of "\n".join(data)
            if self._data_size > self._max_size:
                self._reset_event()
                raise SSELimitExceeded(f"an event larger than {self._max_size} characters")
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and _DIGITS.fullmatch(value):
            self.retry = self._retry_in_event = int(value)

    def _dispatch(self) -> ServerSentEvent | None:
        # Per spec an event with no data field is not dispatched, but its type is still reset.
        if not self._data:
            self._reset_event()
            return None
        event = ServerSentEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self.last_event_id,
            retry=self._retry_in_event,
        )
        self._reset_event()
        return event

    def _reset_event(self) -> None:
        self._event = ""
        self._data = []
        self._data_size = 0
        self._retry_in_event = None

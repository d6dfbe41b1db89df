"""The SSE line splitter and event decoder: WHATWG rules, Oxen's wire format, any chunking."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgen.client.sse import MAX_EVENT_SIZE, ServerSentEvent, SSEDecoder, SSELimitExceeded, SSELineDecoder


def decode_all(*chunks: bytes) -> list[ServerSentEvent]:
    """Feed the chunks in order, then close; return every event."""
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def ev(data: str, event: str = "message", id: str | None = None, retry: int | None = None) -> ServerSentEvent:
    """Shorthand for an expected event."""
    return ServerSentEvent(event=event, data=data, id=id, retry=retry)


OXEN_DONE = (
    '{"generation_id":"bb8f5eb7-1","status":"succeeded","media_type":"video",'
    '"model":"kling-video-o3-pro-reference-to-video","url":"https://hub.oxen.ai/api/repos/a/b/v.mp4?sig=x"}'
)
OXEN_FAILED = (
    '{"generation_id":"bb8f5eb7-2","status":"failed","media_type":"video","error":"Insufficient credits"}'
)
OXEN_STREAM = (
    ": keep-alive\n\n"
    f"event: media_generation_completed\ndata: {OXEN_DONE}\n\n"
    ": keep-alive\n\n"
    'event: deployment_updated\ndata: {"deployment":"d1"}\n\n'
    f"event: media_generation_completed\ndata: {OXEN_FAILED}\n\n"
).encode()
OXEN_EVENTS = [
    ev(OXEN_DONE, "media_generation_completed"),
    ev('{"deployment":"d1"}', "deployment_updated"),
    ev(OXEN_FAILED, "media_generation_completed"),
]

# A stream exercising every rule at once, with multi-byte characters, for the chunking tests.
MIXED_STREAM = (
    "\ufeff: hello\r\n"
    "retry: 3000\r\n"
    "id: 7\n"
    "event: tick\r"
    "data: caf\u00e9 \u2603 \U0001f3ac\r\n"
    "data:second\n"
    "\r\n"
    "event: ignored-no-data\n"
    "\n"
    "data\r"
    "\r"
    f"event: media_generation_completed\ndata: {OXEN_DONE}\n\n"
    "data: cut off at the end\n"
).encode()
MIXED_EVENTS = [
    ev("caf\u00e9 \u2603 \U0001f3ac\nsecond", "tick", id="7", retry=3000),
    ev("", id="7"),
    ev(OXEN_DONE, "media_generation_completed", id="7"),
]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        pytest.param(
            b"data: YHOO\ndata: +2\ndata: 10\n\n",
            [ev("YHOO\n+2\n10")],
            id="spec-stock-ticker-multiline-data",
        ),
        pytest.param(
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
            [ev("first event", id="1"), ev("second event", id=""), ev(" third event", id="")],
            id="spec-first-second-third-event-and-id-reset",
        ),
        pytest.param(
            b"data\n\ndata\ndata\n\ndata:",
            [ev(""), ev("\n")],
            id="spec-empty-data-lines-and-unterminated-last-block",
        ),
        pytest.param(b"data:test\n\ndata: test\n\n", [ev("test"), ev("test")], id="spec-space-after-colon"),
        pytest.param(b"data: a\r\rdata: b\r\n\r\ndata: c\n\n", [ev("a"), ev("b"), ev("c")], id="cr-crlf-lf"),
        pytest.param(b"data: a\n\r\n\rdata: b\r\n\n", [ev("a"), ev("b")], id="mixed-line-ends-blank"),
        pytest.param(b": only a comment\n\n:\n\n", [], id="comments-dispatch-nothing"),
        pytest.param(OXEN_STREAM, OXEN_EVENTS, id="oxen-wire-format"),
        pytest.param(b"event: foo\n\ndata: x\n\n", [ev("x")], id="event-type-reset-without-data"),
        pytest.param(b"event\ndata: x\n\n", [ev("x")], id="empty-event-type-is-message"),
        pytest.param(b"data: a:b: c\n\n", [ev("a:b: c")], id="only-first-colon-splits"),
        pytest.param(b"data:  x \n\n", [ev(" x ")], id="only-one-leading-space-stripped"),
        pytest.param(b"foo: bar\nDATA: y\ndata: x\n\n", [ev("x")], id="unknown-and-wrong-case-fields"),
        pytest.param(
            b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", [ev("a", id="1"), ev("b", id="1")], id="nul-id"
        ),
        pytest.param(b"id: 9\n\ndata: a\n\n", [ev("a", id="9")], id="id-persists-across-events"),
        pytest.param(b"retry: 5000\ndata: a\n\ndata: b\n\n", [ev("a", retry=5000), ev("b")], id="retry"),
        pytest.param(
            b"retry: 5s\ndata: a\n\nretry:  10\ndata: b\n\n"
            b"retry: -1\ndata: c\n\nretry: \xd9\xa3\ndata: d\n\n",
            [ev("a"), ev("b"), ev("c"), ev("d")],
            id="retry-not-ascii-digits-ignored",
        ),
        pytest.param(b"\xef\xbb\xbfdata: x\n\n", [ev("x")], id="bom-stripped"),
        pytest.param(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", [], id="only-one-bom-stripped"),
        pytest.param(b"data: \xff\xfe ok\n\n", [ev("\ufffd\ufffd ok")], id="invalid-utf8-replaced"),
        pytest.param(
            "data: a\u2028b\x0bc\x0cd\x1ce\x85f\n\n".encode(),
            [ev("a\u2028b\x0bc\x0cd\x1ce\x85f")],
            id="no-unicode-breaks",
        ),
        pytest.param(b"data: x\n", [], id="event-without-blank-line-discarded"),
        pytest.param(b"data: x", [], id="unterminated-line-discarded"),
        pytest.param(b"data: x\n\r", [ev("x")], id="final-cr-is-a-line-break"),
        pytest.param(b"", [], id="empty-stream"),
    ],
)
def test_decoder_follows_whatwg_rules(stream: bytes, expected: list[ServerSentEvent]) -> None:
    """Each stream, fed whole, yields exactly the events the WHATWG interpretation rules define."""
    assert decode_all(stream) == expected


@pytest.mark.parametrize(
    ("chunks", "lines", "flushed"),
    [
        pytest.param(["a\nb\r\nc\rd"], ["a", "b", "c"], ["d"], id="three-kinds-of-break"),
        pytest.param(["a\r", "\nb\n"], ["a", "b"], [], id="crlf-split-across-chunks-is-one-break"),
        pytest.param(["a\r", "", "\nb\n"], ["a", "b"], [], id="empty-chunk-between-cr-and-lf"),
        pytest.param(["a\r", "\r\n"], ["a", ""], [], id="cr-then-crlf-is-two-breaks"),
        pytest.param(["a\r", "b\n"], ["a", "b"], [], id="lone-cr-at-chunk-end"),
        pytest.param(["ab", "c", "d\n"], ["abcd"], [], id="partial-line-carried"),
        pytest.param(["a\n\n\n"], ["a", "", ""], [], id="blank-lines"),
        pytest.param(
            ["x\u2028y\x85z\x0b\x0c\x1c\x1d\x1e"],
            [],
            ["x\u2028y\x85z\x0b\x0c\x1c\x1d\x1e"],
            id="not-splitlines",
        ),
        pytest.param(["abc"], [], ["abc"], id="flush-returns-unterminated-line"),
        pytest.param([], [], [], id="nothing"),
    ],
)
def test_line_decoder_splits_on_cr_lf_crlf_only(
    chunks: list[str], lines: list[str], flushed: list[str]
) -> None:
    """The line splitter breaks on CR, LF and CRLF only, across chunk boundaries, and flushes the tail."""
    decoder = SSELineDecoder()
    assert [line for chunk in chunks for line in decoder.decode(chunk)] == lines
    assert decoder.flush() == flushed
    assert decoder.flush() == []


def test_line_decoder_emits_cr_terminated_line_without_waiting() -> None:
    """A line ended by a CR at a chunk's end is returned at once, not held until the next chunk."""
    assert SSELineDecoder().decode("data: x\r") == ["data: x"]


@pytest.mark.parametrize("stream", [MIXED_STREAM, OXEN_STREAM], ids=["mixed", "oxen"])
def test_every_two_chunk_split_gives_the_same_events(stream: bytes) -> None:
    """Splitting the stream at any byte position (even inside a UTF-8 character or a CRLF) changes nothing."""
    whole = decode_all(stream)
    for cut in range(len(stream) + 1):
        assert decode_all(stream[:cut], stream[cut:]) == whole, f"split at byte {cut}"


@pytest.mark.parametrize(("stream", "expected"), [(MIXED_STREAM, MIXED_EVENTS), (OXEN_STREAM, OXEN_EVENTS)])
def test_one_byte_at_a_time_gives_the_same_events(stream: bytes, expected: list[ServerSentEvent]) -> None:
    """Feeding one byte per chunk yields the same events as feeding the stream whole."""
    assert decode_all(stream) == expected
    assert decode_all(*(stream[i : i + 1] for i in range(len(stream)))) == expected


def test_multibyte_character_split_across_chunks_survives() -> None:
    """A 4-byte UTF-8 character split 1+3 and 2+2 across chunks decodes intact."""
    emoji = "\U0001f3ac".encode()
    for cut in range(1, 4):
        assert decode_all(b"data: " + emoji[:cut], emoji[cut:] + b"\n\n") == [ev("\U0001f3ac")]


def test_truncated_multibyte_character_at_close_is_replaced() -> None:
    """An incomplete UTF-8 sequence at end of stream does not raise (it is discarded with its event)."""
    assert decode_all(b"data: ok\n\ndata: \xe2\x98") == [ev("ok")]


def test_bom_split_across_chunks_is_stripped() -> None:
    """A BOM whose bytes arrive in separate chunks is still recognised and stripped."""
    assert decode_all(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [ev("x")]


def test_events_are_returned_as_soon_as_their_blank_line_arrives() -> None:
    """feed() returns an event in the call that delivers its terminating blank line, not later."""
    decoder = SSEDecoder()
    assert decoder.feed(b"event: media_generation_completed\ndata: {}\n") == []
    assert decoder.feed(b"\n") == [ev("{}", "media_generation_completed")]


def test_last_event_id_and_retry_are_kept_for_reconnects() -> None:
    """The decoder remembers the last event ID and reconnection time even for events never dispatched."""
    decoder = SSEDecoder()
    decoder.feed(b"id: 42\nretry: 1500\n\n")
    assert (decoder.last_event_id, decoder.retry) == ("42", 1500)


def test_feed_after_close_is_a_programming_error() -> None:
    """Feeding a closed decoder raises instead of silently dropping data; closing twice is harmless."""
    decoder = SSEDecoder()
    assert decoder.close() == []
    assert decoder.close() == []
    with pytest.raises(RuntimeError, match="after close"):
        decoder.feed(b"data: x\n\n")


# Property test: generated streams, serialised with random line endings, parse back to the same
# events whatever the chunking.
_value = st.text(st.characters(exclude_characters="\r\n\0", exclude_categories=["Cs"]), max_size=12)
_event = st.tuples(
    st.one_of(st.none(), _value),  # event type
    st.lists(_value, min_size=1, max_size=3),  # data lines
    st.one_of(st.none(), _value),  # id
    st.booleans(),  # a comment before the event
    st.sampled_from(["\n", "\r", "\r\n"]),  # line ending
)


GeneratedEvent = tuple[str | None, list[str], str | None, bool, str]


def _serialise(events: list[GeneratedEvent]) -> tuple[bytes, list[ServerSentEvent]]:
    """Render generated events as an event stream and compute the events it must decode to."""
    text, expected, last_id = "", [], None
    for name, lines, event_id, comment, eol in events:
        text += f": keep-alive{eol}" if comment else ""
        text += f"event: {name}{eol}" if name is not None else ""
        text += "".join(f"data: {line}{eol}" for line in lines)
        if event_id is not None:
            text += f"id: {event_id}{eol}"
            last_id = event_id
        text += eol
        expected.append(ev("\n".join(lines), name or "message", id=last_id))
    return text.encode(), expected


@given(events=st.lists(_event, max_size=6), data=st.data())
def test_random_streams_and_random_chunkings_round_trip(
    events: list[GeneratedEvent], data: st.DataObject
) -> None:
    """Any generated stream decodes to its events, however it is cut into chunks."""
    stream, expected = _serialise(events)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert decode_all(*chunks) == expected


# Limits: a line or an event past MAX_EVENT_SIZE characters raises, having buffered at most that much.

CHUNK = 64 * 1024


def test_300_mb_without_a_newline_stops_after_about_the_cap_with_bounded_memory() -> None:
    """~300 MB in 64 KiB chunks and no line break: the decoder raises once a line passes 1 MiB, having
    been fed at most the cap plus one chunk, and never holds much more than the cap."""
    decoder = SSEDecoder()
    chunk = b"data: " + b"x" * (CHUNK - 6)
    tracemalloc.start()
    fed = 0
    try:
        with pytest.raises(SSELimitExceeded, match="a line longer than 1048576 characters"):
            for _ in range(300 * 1024 * 1024 // CHUNK):
                fed += len(chunk)
                decoder.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert MAX_EVENT_SIZE == 1024 * 1024
    assert MAX_EVENT_SIZE < fed <= MAX_EVENT_SIZE + CHUNK
    assert peak < 4 * MAX_EVENT_SIZE


def test_an_event_of_many_short_data_lines_past_the_cap_raises() -> None:
    """Short lines that add up to an event over the cap raise too (the event is never dispatched)."""
    decoder = SSEDecoder(max_size=100)
    assert decoder.feed(b"data: " + b"a" * 49 + b"\ndata: " + b"b" * 50 + b"\n\n") == [
        ev("a" * 49 + "\n" + "b" * 50)
    ]
    decoder.feed(b"data: " + b"a" * 50 + b"\n")
    with pytest.raises(SSELimitExceeded, match="an event larger than 100 characters"):
        decoder.feed(b"data: " + b"b" * 50 + b"\n")


def test_a_line_at_the_cap_passes_and_one_character_more_raises() -> None:
    """The cap is inclusive, whether the line arrives whole or across chunks."""
    at_cap = b"data:" + b"x" * 95  # 100 characters
    assert SSEDecoder(max_size=100).feed(at_cap + b"\n\n") == [ev("x" * 95)]
    decoder = SSEDecoder(max_size=100)
    assert decoder.feed(at_cap[:60]) == [] and decoder.feed(at_cap[60:] + b"\n\n") == [ev("x" * 95)]
    with pytest.raises(SSELimitExceeded):
        SSEDecoder(max_size=100).feed(at_cap + b"x\n\n")
    split = SSEDecoder(max_size=100)
    split.feed(at_cap)
    with pytest.raises(SSELimitExceeded):
        split.feed(b"x")


def test_line_decoder_limit_counts_the_line_held_across_chunks() -> None:
    """SSELineDecoder raises as soon as the partial line it holds would pass its limit."""
    lines = SSELineDecoder(max_line=10)
    assert lines.decode("abcde") == []
    assert lines.decode("fghij\nklm") == ["abcdefghij"]
    with pytest.raises(SSELimitExceeded, match="a line longer than 10 characters"):
        lines.decode("nopqrstu")

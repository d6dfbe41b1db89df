"""The ports of what oxen-server's stack does to a request's pieces: actix-router's path decoding,
actix-web's Content-Disposition parsing, sanitize-filename 0.6.0, liboxen's path checks."""

from __future__ import annotations

import pytest

from batchgen.emulator.actix import parse_usize, router_decode
from batchgen.emulator.multipart import Disposition, parse_disposition
from batchgen.emulator.oxen_paths import (
    Refusal,
    extension,
    join,
    normalize_upload_path,
    rust_debug,
    sanitize_filename,
    validate_and_normalize,
)


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("/a%20b/caf%C3%A9", "/a b/café"),
        ("/feature%2Fx/%2B/%25", "/feature%2Fx/%2B/%25"),  # protected: left encoded
        ("/%2541/%%41/%zz", "/%2541/%A/%zz"),  # one pass; invalid escapes pass through
        ("/%FF", "/\ufffd"),  # not UTF-8: replaced, as from_utf8_lossy does
    ],
)
def test_router_decode(raw: str, decoded: str) -> None:
    """actix-router's decoding: one pass, `%2F`, `%2B` and `%25` left encoded, bad escapes kept, invalid UTF-8
    replaced."""
    assert router_decode(raw) == decoded


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("0", 0),
        ("+7", 7),
        ("", "cannot parse integer from empty string"),
        ("-1", "invalid digit found in string"),
    ],
)
def test_parse_usize(raw: str, parsed: int | str) -> None:
    """Rust's usize parsing: a leading '+' is taken; empty or negative text gives Rust's error text."""
    assert parse_usize(raw) == parsed


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('form-data; name="file"; filename="a%20b.png"', Disposition("form-data", "file", "a%20b.png")),
        ('form-data; name=file; filename="/abs/x.png"', Disposition("form-data", "file", "/abs/x.png")),
        ('Form-Data; NAME="f"; filename="q\\"uote.png"', Disposition("form-data", "f", 'q"uote.png')),
        ("form-data; name=\"file\"; filename*=UTF-8''x%20y.png", Disposition("form-data", "file", None)),
        (
            'form-data; name="f"; filename="caf\u00e9 (1)+.mp4"',
            Disposition("form-data", "f", "caf\u00e9 (1)+.mp4"),
        ),
        ('form-data; name="f"; filename="unclosed', None),
        ("form-data; name=", None),
        ("form-data; filename*=notextended", None),
    ],
)
def test_parse_disposition(header: str, expected: Disposition | None) -> None:
    """Quoted values lose their backslash escapes but are never percent-decoded; a leading '/' stays;
    filename* is no filename; a malformed header parses to nothing."""
    assert parse_disposition(header) == expected


@pytest.mark.parametrize(
    ("name", "sanitized"),
    [
        ('a/b\\c:d*e?f"g<h>i|j.png', "abcdefghij.png"),
        ("tab\there\x7f\x85.png", "tabhere\x7f.png"),  # C0 and C1 controls go, DEL stays
        ("...", ""),
        ("..a", "..a"),
        ("hero (red)+é 1.mp4", "hero (red)+é 1.mp4"),
        ("é" * 200, "é" * 127),  # 255 bytes at most, cut on a character boundary
    ],
)
def test_sanitize_filename(name: str, sanitized: str) -> None:
    """sanitize-filename drops separators, reserved and control characters (not DEL), a dots-only name, and
    cuts at 255 bytes on a character boundary."""
    assert sanitize_filename(name) == sanitized


@pytest.mark.parametrize(
    ("path", "normalized"),
    [
        ("a/./b//c.png", "a/b/c.png"),
        ("./a", "a"),
        ("a/../b", Refusal("path cannot contain parent directory references (..)")),
        ("/etc/x", Refusal("path must be relative, not absolute")),
        ("./", Refusal("path resolves to empty after normalization")),
    ],
)
def test_validate_and_normalize(path: str, normalized: str | Refusal) -> None:
    """liboxen's path check drops `.` and empty segments, and refuses `..`, an absolute path and one that
    normalises to nothing."""
    assert validate_and_normalize(path) == normalized


def test_join_and_the_put_routes_checks() -> None:
    """Path::join lets an absolute name replace the directory; PUT's own check refuses what traverses."""
    assert (join("d", "x"), join("d/", "x"), join("", "x"), join("d", "/x")) == ("d/x", "d/x", "x", "/x")
    assert normalize_upload_path("a/../b", allow_empty=False, label="uploaded file") == Refusal(
        "Invalid uploaded file: path traversal is not allowed: a/../b"
    )
    assert normalize_upload_path("", allow_empty=True, label="target directory") == ""


def test_extension_and_debug_quoting() -> None:
    """extension() takes the last suffix (none for a dotfile or no dot, empty after a final dot); rust_debug
    quotes as Rust's `{:?}`."""
    assert (extension("d/a.tar.gz"), extension(".hidden"), extension("noext"), extension("a.")) == (
        "gz",
        None,
        None,
        "",
    )
    assert rust_debug('a "b"\\\n') == '"a \\"b\\"\\\\\\n"'

"""Repository paths and file names as oxen-server checks them: Rust's ``Path`` components and
``join``, liboxen's ``validate_and_normalize_path``, ``controllers/file.rs``'s
``normalize_relative_upload_path``, and the ``sanitize-filename`` 0.6.0 crate ``PUT .../file`` runs
part names through. Each check answers the normalized path, or the server's message as a ``Refusal``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Component = tuple[Literal["root", "cur", "parent", "normal"], str]

# sanitize-filename 0.6.0 on Linux (windows=false, truncate=true, replacement="").
_ILLEGAL = re.compile(r'[/?<>\\:*|"]')
_CONTROL = re.compile("[\x00-\x1f\x80-\x9f]")
_DOTS_ONLY = re.compile(r"\.+")
_NAME_BYTES = 255


@dataclass(frozen=True)
class Refusal:
    """Why a path was refused, in the server's words."""

    message: str


def sanitize_filename(name: str) -> str:
    """``sanitize_filename::sanitize``: illegal and control characters dropped, a dots-only name made
    empty, the result cut to 255 bytes on a character boundary."""
    name = _CONTROL.sub("", _ILLEGAL.sub("", name))
    if _DOTS_ONLY.fullmatch(name):
        name = ""
    return name.encode("utf-8", "surrogatepass")[:_NAME_BYTES].decode("utf-8", "ignore")


def components(path: str) -> list[Component]:
    """Rust's ``Path::components`` of a Unix path: repeated and trailing slashes vanish, and so does
    every ``.`` except a leading one."""
    found: list[Component] = [("root", "/")] if path.startswith("/") else []
    for index, segment in enumerate(path.split("/")):
        if segment == "." and index == 0 and not found:
            found.append(("cur", "."))
        elif segment == "..":
            found.append(("parent", ".."))
        elif segment not in ("", "."):
            found.append(("normal", segment))
    return found


def join(directory: str, name: str) -> str:
    """``Path::new(directory).join(name)``: an absolute ``name`` replaces the directory."""
    if name.startswith("/") or not directory:
        return name
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


def validate_and_normalize(path: str) -> str | Refusal:
    """liboxen ``util::fs::validate_and_normalize_path``."""
    normalized: list[str] = []
    for kind, text in components(path):
        if kind == "parent":
            return Refusal("path cannot contain parent directory references (..)")
        if kind == "root":
            return Refusal("path must be relative, not absolute")
        if kind == "normal":
            normalized.append(text)
    return "/".join(normalized) if normalized else Refusal("path resolves to empty after normalization")


def normalize_upload_path(path: str, *, allow_empty: bool, label: str) -> str | Refusal:
    """``normalize_relative_upload_path`` of ``controllers/file.rs`` (``PUT .../file``)."""
    if path.startswith("/"):
        return Refusal(f"Invalid {label}: absolute paths are not allowed")
    normalized: list[str] = []
    for kind, text in components(path):
        if kind in ("parent", "root"):
            return Refusal(f"Invalid {label}: path traversal is not allowed: {path}")
        if kind == "normal":
            normalized.append(text)
    if not normalized and not allow_empty:
        return Refusal(f"Invalid {label}: path cannot be empty")
    return "/".join(normalized)


def extension(path: str) -> str | None:
    """``Path::extension``: what follows the last dot of the file name; None without a dot, or for a
    name whose only dot leads (``.hidden``)."""
    name = path.rsplit("/", 1)[-1]
    before, dot, after = name.rpartition(".")
    return None if not dot or not before or name == ".." else after


def rust_debug(text: str) -> str:
    """``format!("{:?}", text)`` of a string or path: quoted, with Rust's escapes."""
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif char in "\n\r\t\0":
            escaped.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}[char])
        elif not char.isprintable() and char != " ":
            escaped.append(f"\\u{{{ord(char):x}}}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'

"""Image sniffing: which image type a file's first bytes say it is (PNG, JPEG, GIF or WebP).

A leaf, used both when a manifest's local assets are loaded and when a downloaded image is checked.
"""

from __future__ import annotations

__all__ = ["image_type"]

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(head: bytes) -> str | None:
    """The media type ("image/png", ...) the signature at the start of `head` gives, or None."""
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None

"""The manifest's `assets:`: URLs and data: URIs checked, local image files read, sniffed and hashed."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

from batchgen.manifest.files import Refused, read_regular, reason
from batchgen.manifest.model import Asset, LocalAsset, UrlAsset
from batchgen.media import image_type
from batchgen.wording import describe_value

__all__ = ["MAX_ASSET_BYTES", "load_asset"]

#: The largest local asset file read.
MAX_ASSET_BYTES = 50 * 1024 * 1024

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
_DATA_URI = re.compile(r"data:image/[A-Za-z0-9.+-]+(;[^,]*)?,.+", re.DOTALL)


def load_asset(name: str, value: str, base: Path) -> Asset | str:
    """The asset, or a message saying what is wrong with it."""
    scheme = _SCHEME.match(value)
    if scheme is None:
        return _load_local(name, value, base)
    kind = scheme.group(1).lower()
    if kind in ("http", "https"):
        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        return UrlAsset(name, value) if host else f"{describe_value(value)} is not a valid URL (no host)"
    if kind == "data":
        if _DATA_URI.fullmatch(value):
            return UrlAsset(name, value)
        return f"{describe_value(value)} is not an image data URI: expected data:image/<type>;base64,<data>"
    if kind == "batchgen-asset":
        return "batchgen-asset: placeholders are made by batchgen; give a URL or a file path"
    return f"unsupported URL scheme '{kind}': expected an http(s) URL, a data: URI or a local file path"


def _load_local(name: str, value: str, base: Path) -> LocalAsset | str:
    path = base / value
    try:
        data = read_regular(path, MAX_ASSET_BYTES, "an image file")
    except OSError as exc:
        return f"cannot read asset file '{value}': {reason(exc)}"
    except Refused as exc:
        return f"asset file '{value}' {exc}"
    media_type = image_type(data)
    if media_type is None:
        return f"asset file '{value}' is not a PNG, JPEG, WebP or GIF image"
    return LocalAsset(name, path.resolve(), hashlib.sha256(data).hexdigest(), len(data), media_type)

"""Presigned result URLs: an HMAC over the path and the expiry, checked without any API key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from batchgen.emulator.clock import Clock


def result_path(namespace: str, repo: str, directory: str, generation_id: str, extension: str) -> str:
    """Where a result lives, in the sync API's ``/api/repos/.../files/.../name.ext`` style."""
    parts = (namespace, repo, "files", directory, f"{generation_id}.{extension}")
    return "/api/repos/" + "/".join(quote(part, safe="") for part in parts)


class UrlSigner:
    def __init__(self, clock: Clock, ttl_seconds: float, secret: bytes | None = None) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._secret = secret or secrets.token_bytes(32)

    def _signature(self, path: str, expires: str) -> str:
        return hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def mint(self, origin: str, path: str) -> str:
        """A fresh URL for ``path`` (raw, already quoted) that works until now + TTL."""
        expires = f"{self._clock.time() + self._ttl:.3f}"
        query = urlencode({"expires": expires, "signature": self._signature(path, expires)})
        return f"{origin}{path}?{query}"

    def problem(self, path: str, query: Mapping[str, str]) -> str | None:
        """Why a request for ``path`` with this query is refused, or None if it is valid."""
        expires, signature = query.get("expires", ""), query.get("signature", "")
        if not expires or not signature:
            return "Missing signature"
        if not hmac.compare_digest(signature, self._signature(path, expires)):
            return "Signature does not match"
        try:
            deadline = float(expires)
        except ValueError:
            return "Signature does not match"
        return "Request has expired" if self._clock.time() > deadline else None

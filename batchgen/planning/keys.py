"""Canonical JSON, job keys, and putting uploaded asset URLs into a request (`resolve_request`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from batchgen.manifest.model import ASSET_PLACEHOLDER_PREFIX

__all__ = ["canonical_json", "job_key", "resolve_request"]

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encode: Callable[[Any], str] = _CANONICAL.encode
if c_make_encoder is not None:  # the C encoder, built once (JSONEncoder.encode builds one per call)
    _c_encoder = c_make_encoder(
        None, _CANONICAL.default, encode_basestring, None, ":", ",", True, False, False
    )

    def _encode(obj: Any) -> str:
        return "".join(_c_encoder(obj, 0))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys, no whitespace, non-ASCII kept, NaN refused: the form keys are hashed in."""
    return _encode(obj)


def job_key(model: str, request: Mapping[str, Any], replica: int) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no whitespace, UTF-8) of model, request, replica."""
    canonical = _encode({"model": model, "replica": replica, "request": request})
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def resolve_request(request: Mapping[str, Any], asset_urls: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `request` with every asset placeholder replaced by `asset_urls[sha256 hex]`.

    Raises RuntimeError when a placeholder has no URL (the runner must upload every job asset first).
    """
    return {k: _resolve(v, asset_urls) for k, v in request.items()}


def _resolve(value: Any, urls: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if not value.startswith(ASSET_PLACEHOLDER_PREFIX):
            return value
        digest = value[len(ASSET_PLACEHOLDER_PREFIX) :]
        if digest not in urls:
            raise RuntimeError(f"no URL for local asset sha256:{digest}; upload it before sending")
        return urls[digest]
    if isinstance(value, Mapping):
        return {k: _resolve(v, urls) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, urls) for v in value]
    return value

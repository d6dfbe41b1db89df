"""Helpers shared by the repository tests: multipart forms, repository creation, uploads."""

from __future__ import annotations

from typing import Any

import aiohttp

from .support import Api

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
AUTHOR = {"message": "add ref", "name": "Me", "email": "me@example.com"}
Part = tuple[str, str, bytes, str]  # form field, filename, bytes, content type


def form(files: list[Part], **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, filename, payload, content_type in files:
        data.add_field(name, payload, filename=filename, content_type=content_type)
    for key, value in {**AUTHOR, **fields}.items():
        data.add_field(key, value)
    return data


async def create_repo(api: Api, namespace: str = "me", name: str = "assets") -> tuple[int, Any]:
    body = {
        "namespace": namespace,
        "name": name,
        "user": {"name": "Me", "email": "me@example.com"},
        "description": "refs",
    }
    return await api.request("POST", "/api/repos", json=body)


async def put(
    api: Api,
    where: str,
    files: list[Part],
    repo: str = "me/assets",
    client_timeout: aiohttp.ClientTimeout | None = None,
    **fields: str,
) -> tuple[int, Any]:
    """PUT /api/repos/{repo}/file/{where} with these parts (and the default author fields)."""
    extra: dict[str, Any] = {} if client_timeout is None else {"timeout": client_timeout}
    return await api.request("PUT", f"/api/repos/{repo}/file/{where}", data=form(files, **fields), **extra)


async def put_ok(api: Api, where: str, files: list[Part], **fields: str) -> str:
    """An upload that must succeed; returns its commit id."""
    status, payload = await put(api, where, files, **fields)
    assert status == 200, payload
    return str(payload["commit"]["id"])


def png(name: str, payload: bytes = PNG, field: str = "file") -> Part:
    return (field, name, payload, "image/png")

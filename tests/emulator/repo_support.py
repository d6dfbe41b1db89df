"""Helpers shared by the repository tests: multipart forms, repository creation, uploads, workspaces."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp

from .support import Api

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
AUTHOR = {"message": "add ref", "name": "Me", "email": "me@example.com"}
COMMIT_BODY = {"message": "deliver", "author": "Me", "email": "me@example.com"}
Part = tuple[str, str, bytes, str]  # form field, filename, bytes, content type
REPO = "/api/repos/me/assets"


def form(files: list[Part], *, quote_fields: bool = False, **fields: str | None) -> aiohttp.FormData:
    """A multipart form (even without file parts) of these parts and the author fields; a field given
    as None is left out. Filenames go raw (``quote_fields=False``) unless asked otherwise."""
    data = aiohttp.FormData(quote_fields=quote_fields, default_to_multipart=True)
    for name, filename, payload, content_type in files:
        data.add_field(name, io.BytesIO(payload), filename=filename, content_type=content_type)
    for key, value in {**AUTHOR, **fields}.items():
        if value is not None:
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
    **fields: str | None,
) -> tuple[int, Any]:
    """PUT /api/repos/{repo}/file/{where} with these parts (and the default author fields)."""
    extra: dict[str, Any] = {} if client_timeout is None else {"timeout": client_timeout}
    return await api.request("PUT", f"/api/repos/{repo}/file/{where}", data=form(files, **fields), **extra)


async def put_ok(api: Api, where: str, files: list[Part], **fields: str | None) -> str:
    """An upload that must succeed; returns its commit id."""
    status, payload = await put(api, where, files, **fields)
    assert status == 200, payload
    return str(payload["commit"]["id"])


def png(name: str, payload: bytes = PNG, field: str = "file") -> Part:
    return (field, name, payload, "image/png")


async def raw_request(api: Api, method: str, path: str, **kwargs: Any) -> tuple[int, str, str]:
    """Status, Content-Type and text of an answer that need not be JSON."""
    headers = {**api.auth, **kwargs.pop("headers", {})}
    async with api.session.request(method, api.url(path), headers=headers, **kwargs) as resp:
        return resp.status, resp.content_type, await resp.text()


async def workspace(
    api: Api, workspace_id: str = "ws-1", branch: str = "main", **extra: Any
) -> dict[str, Any]:
    """PUT .../workspaces (get or create), which must answer 200; its ``workspace``."""
    body = {"workspace_id": workspace_id, "branch_name": branch, **extra}
    status, payload = await api.request("PUT", f"{REPO}/workspaces", data=json.dumps(body))
    assert status == 200, payload
    return dict(payload["workspace"])


async def stage(
    api: Api, workspace_id: str, directory: str, files: list[Part], **kwargs: Any
) -> tuple[int, Any]:
    """POST .../workspaces/{id}/files/{directory} with these parts (no author fields)."""
    data = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
    for name, filename, payload, content_type in files:
        data.add_field(name, io.BytesIO(payload), filename=filename, content_type=content_type)
    return await api.request(
        "POST", f"{REPO}/workspaces/{workspace_id}/files/{directory}", data=data, **kwargs
    )


async def commit(api: Api, workspace_id: str, branch: str = "main", verb: str = "merge") -> tuple[int, Any]:
    """POST .../workspaces/{id}/{verb}/{branch} with a complete commit body."""
    return await api.request("POST", f"{REPO}/workspaces/{workspace_id}/{verb}/{branch}", json=COMMIT_BODY)


async def seeded_repo(api: Api) -> str:
    """me/assets with one commit on main holding ``base.txt``; that commit's id."""
    await create_repo(api)
    return await put_ok(api, "main/base.txt", [("file", "base.txt", b"base", "text/plain")])

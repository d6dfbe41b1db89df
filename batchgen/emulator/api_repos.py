"""``/api/repos``: create a repository, upload files (multipart PUT), read public files."""

from __future__ import annotations

import mimetypes
import posixpath

from aiohttp import web
from multidict import MultiDictProxy

from batchgen.emulator.api_queue import read_json_object
from batchgen.emulator.repos import DEFAULT_BRANCH, StoredFile
from batchgen.emulator.responses import error_response, invalid_params, not_found, state_of, success

OXEN_VERSION = "0.36.0"
FormValue = str | bytes | bytearray | web.FileField


async def create_repo(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    if body is None:
        return invalid_params("Request body must be a JSON object sent with Content-Type: application/json")
    namespace, name = body.get("namespace"), body.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str) or not namespace or not name:
        return invalid_params("namespace and name are required")
    description = body.get("description") if isinstance(body.get("description"), str) else ""
    if not state_of(request).repos.create(namespace, name, description or ""):
        return error_response(409, "resource_already_exists", "The resource already exists",
                              f"Repository {namespace}/{name} already exists")
    repository = {"namespace": namespace, "name": name, "description": description, "is_public": True}
    return success("resource_created", repository=repository)


def _content_type(upload: web.FileField, destination: str) -> str:
    declared = upload.content_type
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(destination)[0] or "application/octet-stream"


def _files(form: MultiDictProxy[FormValue]) -> list[web.FileField] | str:
    singles, many = form.getall("file", []), form.getall("files[]", [])
    if singles and many:
        return "Cannot upload both 'file' and 'files[]' in one request"
    uploads = singles or many
    if not uploads or not all(isinstance(item, web.FileField) for item in uploads):
        return "No file provided: send the binary in a 'file' form field"
    return [item for item in uploads if isinstance(item, web.FileField)]


def _text_fields(form: MultiDictProxy[FormValue]) -> dict[str, str] | str:
    values = {name: form.get(name) for name in ("message", "name", "email")}
    for name, value in values.items():
        if not isinstance(value, str) or not value.strip():
            return f"Missing form field: {name}"
    return {name: str(value) for name, value in values.items()}


async def upload(request: web.Request) -> web.Response:
    state, info = state_of(request), request.match_info
    namespace, repo_name, path = info["namespace"], info["repo"], info["path"].strip("/")
    if state.config.auto_create_repos:
        state.repos.create(namespace, repo_name)
    repo = state.repos.repo(namespace, repo_name)
    if repo is None or info["branch"] != DEFAULT_BRANCH:
        return not_found()
    form = await request.post()
    uploads, fields = _files(form), _text_fields(form)
    if isinstance(uploads, str) or isinstance(fields, str):
        return invalid_params(uploads if isinstance(uploads, str) else str(fields))
    into_directory = len(uploads) > 1 or "files[]" in form or repo.is_dir(path)
    stored = {}
    for item in uploads:
        destination = posixpath.join(path, posixpath.basename(item.filename)) if into_directory else path
        stored[destination.strip("/")] = StoredFile(item.file.read(), _content_type(item, destination))
    commit = state.repos.commit(namespace, repo_name, stored, message=fields["message"],
                                author=fields["name"], email=fields["email"])
    state.counters.uploads += len(stored)
    return success("resource_created", oxen_version=OXEN_VERSION, commit=commit.as_json())


async def get_file(request: web.Request) -> web.Response:
    info = request.match_info
    stored = state_of(request).repos.get(info["namespace"], info["repo"], info["branch"], info["path"])
    if stored is None:
        return not_found()
    return web.Response(body=stored.data, content_type=stored.content_type)

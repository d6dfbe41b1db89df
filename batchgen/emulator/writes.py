"""The end of a repository write whose work is done: its answer, or what the write faults put in its
place (the connection cut, or ``server_error_status``), and the ``"upload_answered"`` event of a
commit once its answer is out.
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from batchgen.emulator.context import route_key
from batchgen.emulator.responses import server_error, state_of


async def finish_write(
    request: web.Request, response: web.Response, *, commit_id: str | None = None
) -> web.StreamResponse:
    """Answer a write that succeeded, unless a write fault takes the answer away."""
    state, key = state_of(request), route_key(request)
    if state.faults.should_cut_write(key) and request.transport is not None:
        request.transport.close()  # done, but the client never hears about it
        _answered(request, commit_id)
        return web.Response()
    failed_status = state.faults.write_error_after_work(key)
    if failed_status is not None:  # done, but the client is told it failed
        _answered(request, commit_id)
        return server_error(failed_status)
    if commit_id is None:
        return response
    # Written here so that "upload_answered" fires once the client can have the answer.
    with contextlib.suppress(ConnectionResetError):
        await response.prepare(request)
        await response.write_eof()
    _answered(request, commit_id)
    return response


def _answered(request: web.Request, commit_id: str | None) -> None:
    if commit_id is not None:
        state_of(request).counters.emit("upload_answered", commit_id)

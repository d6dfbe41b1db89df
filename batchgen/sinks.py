"""Where finished results go. Every result is first downloaded and verified into the run directory; then
each sink of the run is handed the verified file with its metadata. The local sink writes the sidecar
beside the file; another destination (an Oxen repository, object storage) is another class here, not an
edit of the runner."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from batchgen.rundir import sidecar_path, write_json


@dataclass(frozen=True, slots=True)
class VerifiedResult:
    """A finished result: its file (whole, verified, at its final path) and what is known about it."""

    key: str
    path: Path
    sha256: str
    size: int
    metadata: dict[str, Any]  # the sidecar's content: job, request, generation, timings, cost, api


class ResultSink(Protocol):
    """A destination for finished results. `deliver` may batch; `close` flushes what it holds. A sink
    that fails raises; the run reports it, and the result stays verified on disk (never lost)."""

    name: str

    async def deliver(self, result: VerifiedResult) -> None: ...

    async def close(self) -> None: ...


class LocalSink:
    """The run directory itself: the result is already at its path; its sidecar JSON goes beside it."""

    name = "local"

    async def deliver(self, result: VerifiedResult) -> None:
        await asyncio.to_thread(
            partial(write_json, sidecar_path(result.path), result.metadata, sort_keys=True)
        )

    async def close(self) -> None:
        return None

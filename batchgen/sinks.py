"""Where finished results go. Every result is first downloaded and verified into the run directory; then
each sink of the run is handed the verified file with its metadata. The local sink writes the sidecar
beside the file; another destination (an Oxen repository, object storage) is another class here, not an
edit of the runner."""

from __future__ import annotations

from dataclasses import dataclass
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
    """A destination for finished results.

    `land` runs in the download's worker thread right after the file is verified at its path, before the
    job is journaled done (keep it short and local). `deliver` runs on the event loop afterwards and may
    batch; `close` flushes what it holds. A sink that fails raises; the run reports it, and the result
    stays verified on disk (never lost).
    """

    name: str

    def land(self, result: VerifiedResult) -> None: ...

    async def deliver(self, result: VerifiedResult) -> None: ...

    async def close(self) -> None: ...


class LocalSink:
    """The run directory itself: the result is already at its path; its sidecar JSON goes beside it
    (written in the same worker-thread hop as the result)."""

    name = "local"

    def land(self, result: VerifiedResult) -> None:
        write_json(sidecar_path(result.path), result.metadata, sort_keys=True)

    async def deliver(self, result: VerifiedResult) -> None:
        return None

    async def close(self) -> None:
        return None

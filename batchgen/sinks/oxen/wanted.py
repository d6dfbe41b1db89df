"""What a run directory delivers (no network): each done result of the current plan with its sidecar,
then the run's files. The repository mirrors the run directory under the target's path:

```
{path}/videos/<output path>        each result, with its <stem>.json sidecar beside it
{path}/results.csv, results.jsonl  the results tables, and report.html when the run has one
```

Results set aside in `superseded/` and generations of jobs the manifest no longer has are not
delivered (the repository keeps the versions it already has: delivery never deletes).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from batchgen.journal.store import JobRecord
from batchgen.rundir.layout import result_relpath, sidecar_bytes
from batchgen.sinks.oxen.batching import Outgoing
from batchgen.states import JobState
from batchgen.target import DeliveryTarget

RUN_FILES = ("results.csv", "results.jsonl", "report.html")


def sidecar_of(local: str) -> str:
    return PurePosixPath(local).with_suffix(".json").as_posix()


def result_items(
    target: DeliveryTarget, local: str, sha256: str, size: int, sidecar: Any | None = None
) -> list[Outgoing]:
    """A result and its sidecar; the sidecar's bytes are `sidecar` when it is bytes, else made from it
    when given (exactly what the run directory's sidecar holds), else read from the run directory when
    sent."""
    side = sidecar_of(local)
    data = sidecar_bytes(sidecar) if sidecar is not None and not isinstance(sidecar, bytes) else sidecar
    return [
        Outgoing(local, target.repo_path(local), size, sha256=sha256, result=True),
        Outgoing(side, target.repo_path(side), 0 if data is None else len(data), data=data),
    ]


def done_records(records: Iterable[JobRecord]) -> list[JobRecord]:
    """The jobs of the current plan whose result is done, in journal order."""
    return [
        record
        for record in sorted(records, key=lambda r: r.idx)
        if record.planned and record.state is JobState.DONE and record.sha256
    ]


def done_results(target: DeliveryTarget, records: Iterable[JobRecord]) -> list[Outgoing]:
    """Every done result of the current plan (journal order), each with its sidecar."""
    items: list[Outgoing] = []
    for r in done_records(records):
        items += result_items(target, result_relpath(r.output_path), r.sha256 or "", r.size or 0)
    return items


def run_files(target: DeliveryTarget, run_dir: Path, names: Iterable[str] = RUN_FILES) -> list[Outgoing]:
    """Those of the run's files that exist (report.html only once a run wrote it), never a symlink."""
    found = []
    for name in names:
        path = run_dir / name
        if path.is_file() and not os.path.islink(path):
            found.append(Outgoing(name, target.repo_path(name), path.stat().st_size))
    return found

"""batchgen: run large batches of Oxen.ai video and image generations from a YAML manifest.

The public names below are imported on first use (PEP 562), so importing one part of batchgen
(`batchgen.manifest`, `batchgen.cli`) does not load every other part (the runner, aiohttp, jsonschema).
"""

import os as _os
import typing as _typing
from importlib import import_module as _import_module

_POSIX_ONLY = (
    "batchgen supports POSIX systems (Linux, macOS) only: it relies on fcntl file locks and POSIX "
    "signal handlers."
)
if _os.name != "posix":  # say so, rather than fail later on a missing fcntl
    raise RuntimeError(_POSIX_ONLY)

if _typing.TYPE_CHECKING:
    from batchgen.client.api import OxenClient
    from batchgen.config import Limits, RetryPolicy, RunOptions, Timeouts, UploadTarget
    from batchgen.errors import ApiError, BatchgenError, ManifestError, Problem, StorageError, UserError
    from batchgen.journal.store import Journal
    from batchgen.manifest import Manifest, load_manifest
    from batchgen.planning import Job, Plan, build_plan
    from batchgen.registry import SnapshotCatalog
    from batchgen.run.batch import BatchResult, run_manifest, run_manifest_async
    from batchgen.run.runner import Runner, RunOutcome, RunStats, StopReason
    from batchgen.sinks.base import ResultSink, VerifiedResult
    from batchgen.states import JobState

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "BatchResult",
    "BatchgenError",
    "Job",
    "JobState",
    "Journal",
    "Limits",
    "Manifest",
    "ManifestError",
    "OxenClient",
    "Plan",
    "Problem",
    "ResultSink",
    "RetryPolicy",
    "RunOptions",
    "RunOutcome",
    "RunStats",
    "Runner",
    "SnapshotCatalog",
    "StopReason",
    "StorageError",
    "Timeouts",
    "UploadTarget",
    "UserError",
    "VerifiedResult",
    "__version__",
    "build_plan",
    "load_manifest",
    "run_manifest",
    "run_manifest_async",
]

#: Where each public name lives.
_HOMES = {
    "OxenClient": "batchgen.client.api",
    **dict.fromkeys(("BatchResult", "run_manifest", "run_manifest_async"), "batchgen.run.batch"),
    **dict.fromkeys(("ResultSink", "VerifiedResult"), "batchgen.sinks.base"),
    **dict.fromkeys(("Limits", "RetryPolicy", "RunOptions", "Timeouts", "UploadTarget"), "batchgen.config"),
    **dict.fromkeys(("ApiError", "BatchgenError", "ManifestError", "Problem"), "batchgen.errors"),
    **dict.fromkeys(("StorageError", "UserError"), "batchgen.errors"),
    **dict.fromkeys(("Manifest", "load_manifest"), "batchgen.manifest"),
    **dict.fromkeys(("Job", "Plan", "build_plan"), "batchgen.planning"),
    "SnapshotCatalog": "batchgen.registry",
    **dict.fromkeys(("Runner", "RunOutcome", "RunStats", "StopReason"), "batchgen.run.runner"),
    "JobState": "batchgen.states",
    "Journal": "batchgen.journal.store",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'batchgen' has no attribute {name!r}")
    value = getattr(_import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

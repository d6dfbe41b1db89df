"""batchgen: run large batches of Oxen.ai video and image generations from a YAML manifest."""

from batchgen.api import OxenClient
from batchgen.config import Limits, RetryPolicy, RunOptions, Timeouts, UploadTarget
from batchgen.errors import (
    ApiError,
    BatchgenError,
    ManifestError,
    Problem,
    StorageError,
    UserError,
)
from batchgen.manifest import Manifest, load_manifest
from batchgen.planning import Job, Plan, build_plan
from batchgen.registry import SnapshotCatalog
from batchgen.runner import Runner, RunOutcome, RunStats, StopReason
from batchgen.states import JobState
from batchgen.store import Journal

__version__ = "0.1.0"

__all__ = [
    "ApiError",
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
    "__version__",
    "build_plan",
    "load_manifest",
]

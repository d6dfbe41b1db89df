"""batchgen: run large batches of Oxen.ai video and image generations from a YAML manifest."""

from batchgen.errors import (
    ApiError,
    BatchgenError,
    ManifestError,
    Problem,
    UserError,
)

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "BatchgenError",
    "ManifestError",
    "Problem",
    "UserError",
    "__version__",
]

"""The one exception tree of batchgen (a leaf: imports nothing from batchgen).

    BatchgenError
    ├── UserError                  bad input or usage; exit 2, nothing sent
    │   ├── ManifestError          one or more Problems, each with file:line:column and field
    │   ├── ModelDescriptionError  the registry's description of a model cannot be used
    │   ├── RunLocked              another runner holds the run directory
    │   └── UsageError             a bad flag or argument combination
    ├── Unauthenticated            401: the key is missing or wrong (nothing can go on)
    ├── ApiError                   the Oxen API said no, or could not be reached
    │   ├── ApiStatusError         an HTTP error status with the server's detail
    │   │   ├── InsufficientCredits  the account cannot pay (stop submitting)
    │   │   ├── NotFound           404
    │   │   └── RateLimited        429, with the Retry-After the server asked for
    │   ├── HistoryUnreadable      the history cannot be read back far enough (a retry will not help)
    │   └── TransportError         the connection failed
    │       ├── ConnectFailed      the request was surely NOT sent: safe to send again
    │       └── ResponseLost       the request MAY have been acted on: reconcile first
    │           └── ResponseTimeout  ...and the server may still be acting on it
    ├── DownloadError              a result could not be fetched or verified
    │   ├── DownloadExpired        the presigned URL no longer works: refresh it
    │   ├── DownloadStalled        the server sends too slowly: fetch a fresh URL, try again
    │   └── DownloadCorrupt        the bytes are not a valid result: fetch again
    │       └── UnverifiedKept     ...and they were kept aside for the user (the last try)
    └── StorageError               the run directory or journal cannot be written

Programmer mistakes (illegal state transitions, misuse of an object) raise RuntimeError
subclasses instead, because no user can fix them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BatchgenError(Exception):
    """Base of every error batchgen raises on purpose."""


class UserError(BatchgenError):
    """Bad input or usage: exit 2, nothing submitted, nothing written. The message is worded for a
    Python caller; `cli`, when given, says the same with the command line's flags (the CLI prints it)."""

    def __init__(self, *args: object, cli: str | None = None) -> None:
        super().__init__(*args)
        self.cli = cli


def place(file: str, line: int | None, column: int | None) -> str:
    """`file:line:column`, as far as known (a Problem's or a manifest Location's)."""
    text = file
    if line is not None:
        text += f":{line}"
        if column is not None:
            text += f":{column}"
    return text


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = place(self.file, self.line, self.column)
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class ManifestError(UserError):
    """The manifest (or a file it names) is invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("ManifestError needs at least one problem")
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ModelDescriptionError(UserError):
    """The API's description of a model (`GET /api/ai/models/{id}`) is not one batchgen can validate
    requests against: not a model object, or a request schema that is invalid, recursive or too large."""

    def __init__(self, model_id: str, reason: str) -> None:
        self.model_id = model_id
        self.reason = reason
        super().__init__(
            f"the API's description of model {model_id} is unusable: {reason}\n"
            "    hint: nothing was sent; check that --api-base (or OXEN_API_BASE) is the Oxen API, "
            "or pick another model"
        )


class RunLocked(UserError):
    """Another batchgen process is running on the same run directory."""


class UsageError(UserError):
    """A bad argument, flag or combination of them."""


class StorageError(BatchgenError):
    """The run directory or the journal cannot be written (permissions, disk full)."""


class Unauthenticated(BatchgenError):
    """401: the API key is missing or invalid. Nothing more can succeed, so this is not an ApiError:
    no `except ApiError` (a job failed, a look that cannot be made now...) takes it for one request's
    trouble, and it ends whatever it interrupts."""

    def __init__(self, status: int, method: str, path: str, detail: str) -> None:
        self.status, self.method, self.path, self.detail = status, method, path, detail
        super().__init__(f"{method} {path} -> HTTP {status}: {detail}")


class ApiError(BatchgenError):
    """The Oxen API refused a request or could not be reached."""


class ApiStatusError(ApiError):
    """An HTTP error status. The message never contains the API key."""

    def __init__(self, status: int, method: str, path: str, detail: str) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.detail = detail
        super().__init__(f"{method} {path} -> HTTP {status}: {detail}")


class InsufficientCredits(ApiStatusError):
    """The account has no credits left for another generation."""


class NotFound(ApiStatusError):
    """404 from the API."""


#: How long a 429 without a usable Retry-After has batchgen wait.
DEFAULT_RETRY_AFTER_S = 5.0


class RateLimited(ApiStatusError):
    """429: the server asked us to wait `retry_after` seconds (None when it did not say)."""

    def __init__(self, method: str, path: str, detail: str, retry_after: float | None) -> None:
        super().__init__(429, method, path, detail)
        self.retry_after = retry_after

    @property
    def wait_s(self) -> float:
        """The wait asked for, or DEFAULT_RETRY_AFTER_S when the server did not say."""
        return self.retry_after if self.retry_after is not None else DEFAULT_RETRY_AFTER_S


class HistoryUnreadable(ApiError):
    """The provider's history cannot be read back to the moment asked: too many pages to read, or a
    server whose pages repeat. Answered without a transport fault, so trying again will not help.
    `rows`: what was found all the same (the active rows, the pages read), for a caller it suffices."""

    def __init__(self, message: str, rows: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.rows = list(rows)


class TransportError(ApiError):
    """The connection failed before a complete response arrived."""


class ConnectFailed(TransportError):
    """The request was surely not sent (DNS, refused, TLS before sending)."""


class ResponseLost(TransportError):
    """The request may have reached the server and been acted on; its answer was lost."""


class ResponseTimeout(ResponseLost):
    """No answer within the timeout: the server may still be working on the request."""


class DownloadError(BatchgenError):
    """A result file could not be fetched (transient: try again, resuming where possible)."""


class DownloadExpired(DownloadError):
    """The presigned result URL was refused; get a fresh one from the queue endpoint."""


class DownloadStalled(DownloadError):
    """The server kept the connection alive but sent too slowly, resume after resume; the `.part` is
    kept: get a fresh URL (maybe another server) and call again."""


class DownloadCorrupt(DownloadError):
    """The downloaded bytes failed verification (length, file signature or structure); `problem` is
    the verifier's own words ("an MP4 box b'free' at byte 812 needs ... (cut short?)")."""

    def __init__(self, message: str, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = problem or message


class UnverifiedKept(DownloadCorrupt):
    """Bytes that failed verification, moved (whole, fsynced) to `path` instead of being deleted: they
    were paid for, and the user decides what they are worth. `size` and `sha256` are theirs."""

    def __init__(self, message: str, problem: str, *, path: Path, size: int, sha256: str) -> None:
        super().__init__(message, problem)
        self.path, self.size, self.sha256 = path, size, sha256

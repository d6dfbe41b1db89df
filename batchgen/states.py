"""Job states and the table of legal transitions between them (pure)."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "pending"  # planned, nothing at the provider for the current attempt
    SUBMITTING = "submitting"  # journaled before the POST: after a crash, ambiguous until reconciled
    QUEUED = "queued"  # the provider holds a generation id for it, waiting
    PROCESSING = "processing"  # the provider is rendering it
    SUCCEEDED = "succeeded"  # rendered (and paid for); the file is not on disk yet
    UNVERIFIED = "unverified"  # paid and downloaded, but its bytes failed verification every time: kept
    # aside in unverified/ for the user (`batchgen unverified`), never downloaded again by itself
    DONE = "done"  # verified file at its final path, sidecar written
    FAILED = "failed"  # failed for good in this run (attempts used up, or no credits)
    INVALID = "invalid"  # the provider rejected the request itself: retrying cannot help
    CANCELLED = "cancelled"  # cancelled at the provider by `batchgen cancel`
    SUPERSEDED = "superseded"  # its file was moved to superseded/: a later plan gave its path to another job


IN_FLIGHT = frozenset({JobState.SUBMITTING, JobState.QUEUED, JobState.PROCESSING})
"""States that hold a concurrency slot at the provider."""

AT_PROVIDER = frozenset({JobState.QUEUED, JobState.PROCESSING})
"""States whose generation is known to exist and is not finished."""

NEEDS_DOWNLOAD = frozenset({JobState.SUCCEEDED})

BILLED = IN_FLIGHT | NEEDS_DOWNLOAD | {JobState.DONE, JobState.UNVERIFIED}
"""States whose generation exists or may exist at the provider, so its price counts as spent."""

NO_RESULT = frozenset({JobState.FAILED, JobState.INVALID, JobState.CANCELLED})
"""States that ended without a result: a generation made for one may never be charged."""

RESTARTABLE = frozenset({JobState.FAILED, JobState.CANCELLED})
"""States a new run puts back to pending: running again finishes what is missing."""

_S = JobState
TRANSITIONS: frozenset[tuple[JobState, JobState]] = frozenset(
    {
        (_S.PENDING, _S.SUBMITTING),
        (_S.PENDING, _S.FAILED),  # e.g. its reference image could not be uploaded
        (_S.SUBMITTING, _S.PENDING),  # surely not sent, or reconciled and not found
        (_S.SUBMITTING, _S.QUEUED),
        (_S.SUBMITTING, _S.PROCESSING),  # reconciled: found already running
        (_S.SUBMITTING, _S.SUCCEEDED),  # reconciled: found already finished
        (_S.SUBMITTING, _S.FAILED),
        (_S.SUBMITTING, _S.INVALID),
        (_S.QUEUED, _S.PROCESSING),
        (_S.QUEUED, _S.SUCCEEDED),
        (_S.PROCESSING, _S.SUCCEEDED),
        (_S.QUEUED, _S.PENDING),  # the generation failed transiently: try again
        (_S.PROCESSING, _S.PENDING),
        (_S.QUEUED, _S.FAILED),
        (_S.PROCESSING, _S.FAILED),
        (_S.QUEUED, _S.INVALID),
        (_S.PROCESSING, _S.INVALID),
        (_S.QUEUED, _S.CANCELLED),
        (_S.PROCESSING, _S.CANCELLED),
        (_S.SUCCEEDED, _S.DONE),  # downloaded and verified (or a verified file was already at its path)
        (_S.DONE, _S.SUCCEEDED),  # the file went missing: fetch it again (never pay again)
        (_S.FAILED, _S.PENDING),
        (_S.CANCELLED, _S.PENDING),
        (_S.INVALID, _S.PENDING),  # only when the user asks (--retry-invalid)
        (_S.DONE, _S.SUPERSEDED),  # another job of the current plan owns its path: moved aside, kept
        (_S.SUCCEEDED, _S.SUPERSEDED),  # paid, no longer planned, path taken: downloaded to superseded/
        (_S.SUPERSEDED, _S.DONE),  # planned again: moved back to its path
        (_S.SUPERSEDED, _S.SUCCEEDED),  # its file is gone: fetched again (never paid again)
        (_S.SUCCEEDED, _S.UNVERIFIED),  # its bytes failed verification every time: kept aside
        (_S.UNVERIFIED, _S.SUCCEEDED),  # `batchgen unverified --fetch-again`: the next run downloads it
        (_S.UNVERIFIED, _S.DONE),  # `batchgen unverified --accept`: the kept bytes are the result
        (_S.UNVERIFIED, _S.SUPERSEDED),  # accepted, but no longer planned: kept in superseded/
    }
)


class IllegalTransition(RuntimeError):
    """A bug: the runner tried a state change the table does not allow."""


#: The `api` the journal records for a generation the sandbox's built-in emulator made (an origin
#: such as "https://hub.oxen.ai" for a real one).
SANDBOX_IDENTITY = "sandbox"

#: Legal only for a generation the sandbox made: a new emulator serves every sandbox session, so a
#: result an earlier session did not download is gone with it. Nothing was paid: the job is submitted again.
SANDBOX_ONLY = frozenset({(JobState.SUCCEEDED, JobState.PENDING)})


def check_transition(old: JobState, new: JobState, *, sandbox: bool = False) -> None:
    if sandbox and (old, new) in SANDBOX_ONLY:
        return
    if old != new and (old, new) not in TRANSITIONS:
        raise IllegalTransition(f"illegal job state change {old} -> {new}")

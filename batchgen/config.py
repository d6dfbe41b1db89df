"""Frozen run settings, validated on construction (no env vars, files or network here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from batchgen.errors import UsageError
from batchgen.states import SANDBOX_IDENTITY as SANDBOX_IDENTITY
from batchgen.target import DeliveryTarget, branch_problem, repo_problem

DEFAULT_API_BASE = "https://hub.oxen.ai"

#: How long a drain (after the first Ctrl-C or SIGTERM) waits for in-flight work: two minutes lets most
#: renders under way finish and be downloaded; what is left (a longer render, an API that does not
#: answer) stays in the journal and the rerun picks it up, never paying twice.
DRAIN_TIMEOUT_S = 120.0


def api_origin(api_base: str) -> str:
    """scheme://host[:port] of an API base, lower-cased, default ports dropped (its identity)."""
    parts = urlsplit(api_base.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    port = parts.port if parts.port is not None and parts.port != default else None
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port else "")


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"'{name}' must be > 0, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    concurrency: int = 8  # generations in flight at the provider
    downloads: int = 4  # result downloads at once

    def __post_init__(self) -> None:
        _positive("concurrency", self.concurrency)
        _positive("downloads", self.downloads)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    request_s: float = 60.0  # one API call, start to end
    connect_s: float = 15.0
    download_read_s: float = 60.0  # one read of a result download (not the whole file)
    stream_idle_s: float = 45.0  # no byte on /api/events (keep-alives count) for this long: reconnect
    generation_s: float | None = None  # give up tracking one generation after this long (None: never)

    def __post_init__(self) -> None:
        for f in ("request_s", "connect_s", "download_read_s", "stream_idle_s"):
            _positive(f, getattr(self, f))
        if self.generation_s is not None:
            _positive("generation_s", self.generation_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    generation_retries: int = 2  # extra attempts for a generation that failed transiently
    request_attempts: int = 8  # tries of one API call on transient errors
    download_attempts: int = 6  # tries of one download (each resumes where the last stopped)
    download_resumes: int = 5  # cuts or stalls one download attempt resumes from before it fails
    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.5  # fraction of the delay drawn at random, so clients do not retry in step
    reconnect_initial_s: float = 0.05  # the event stream reconnects (forever) faster, capped lower
    reconnect_max_s: float = 5.0

    def __post_init__(self) -> None:
        for name, at_least in (
            ("retries", self.generation_retries),
            ("download_resumes", self.download_resumes),
        ):
            if at_least < 0:
                raise ValueError(f"'{name}' must be >= 0, got {at_least!r}")
        for name in ("request_attempts", "download_attempts", "initial_s", "max_s", "reconnect_initial_s"):
            _positive(name, getattr(self, name))
        _positive("reconnect_max_s", self.reconnect_max_s)
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"'jitter' must be within 0..1, got {self.jitter!r}")

    def reconnects(self) -> RetryPolicy:
        """This policy with the event stream's reconnect backoff in place of the requests' one."""
        return replace(self, initial_s=self.reconnect_initial_s, max_s=self.reconnect_max_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadTarget:
    """Where local reference images are uploaded: an Oxen repository the key can write to."""

    namespace: str
    repo: str
    branch: str = "main"
    prefix: str = "batchgen-assets"
    create: bool = False  # create the repository (POST /api/repos) when it does not exist

    @classmethod
    def from_manifest(cls, upload: Mapping[str, Any]) -> UploadTarget:
        return cls(
            namespace=str(upload["namespace"]),
            repo=str(upload["repo"]),
            branch=str(upload.get("branch", "main")),
            prefix=str(upload.get("prefix", "batchgen-assets")),
            create=upload.get("create") is True,
        )

    @classmethod
    def parse(cls, text: str) -> UploadTarget:
        """Parse 'namespace/repo' or 'namespace/repo@branch' (`--upload-repo`): names Oxen takes and a
        branch that may hold '/' (batchgen.target's rules). Raises ValueError saying why not."""
        spec, _, branch = text.partition("@")
        namespace, _, repo = spec.partition("/")
        if not namespace or not repo or "/" in repo:
            raise ValueError(f"upload repository must be 'namespace/repo[@branch]', got {text!r}")
        problem = repo_problem(spec)
        if problem:
            raise ValueError(f"upload repository {spec!r} {problem}")
        problem = branch_problem(branch) if branch else None
        if problem:
            raise ValueError(f"upload branch {branch!r} {problem}")
        return cls(namespace=namespace, repo=repo, branch=branch or "main")


#: The breaker's fraction acts only once this many jobs of the run have finished (a count acts at once).
BREAKER_MIN_FINISHED = 10
NOTIFY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class FailureThreshold:
    """`run.halt_after_failures`: a count of failed jobs (25) or a share of the finished ones ("10%")."""

    count: int | None = None
    percent: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.count is None) == (self.percent is None):
            raise ValueError("'halt_after_failures' is a count or a percentage, not both")
        if self.count is not None and self.count < 1:
            raise ValueError(f"'halt_after_failures' must be at least 1, got {self.count!r}")
        if self.percent is not None and not (self.percent.is_finite() and 0 < self.percent <= 100):
            raise ValueError(f"'halt_after_failures' must be a percentage in (0, 100], got {self.percent}%")

    @classmethod
    def parse(cls, value: Any) -> FailureThreshold:
        """25, "25", "10%" or "2.5%"; raises ValueError saying what is expected."""
        if isinstance(value, FailureThreshold):
            return value
        text = str(value).strip()
        try:
            if text.endswith("%"):
                return cls(percent=Decimal(text[:-1].strip()))
            if isinstance(value, bool) or not text.isdigit():
                raise ValueError
            return cls(count=int(text))
        except (InvalidOperation, ValueError):
            raise ValueError(
                f"'halt_after_failures' must be a count such as 25 or a percentage such as \"10%\", got {value!r}"
            ) from None

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count)


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    """Who hears how a run went (`notify:`): a command as an argv list (run without a shell, the
    summary on its stdin) or a webhook URL (POSTed the summary as JSON), each bounded by `timeout_s`."""

    command: tuple[str, ...] = ()
    webhook: str | None = None
    timeout_s: float = NOTIFY_TIMEOUT_S

    def __post_init__(self) -> None:
        if bool(self.command) == (self.webhook is not None):
            raise ValueError("a notify target is a `command` (an argv list) or a `webhook` (a URL), not both")
        if self.webhook is not None and not self.webhook.startswith(("http://", "https://")):
            raise ValueError(f"a notify webhook must be an http(s) URL, got {self.webhook!r}")
        _positive("timeout_s", self.timeout_s)

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> NotifyTarget:
        timeout = float(entry.get("timeout_s", NOTIFY_TIMEOUT_S))
        if "command" in entry:
            return cls(command=tuple(str(arg) for arg in entry["command"]), timeout_s=timeout)
        return cls(webhook=str(entry.get("webhook", "")), timeout_s=timeout)

    @classmethod
    def parse(cls, text: str) -> NotifyTarget:
        """`--notify`: an http(s) URL is a webhook; anything else a command, split like a shell's words
        (shlex) but never run through one."""
        import shlex

        if text.startswith(("http://", "https://")):
            return cls(webhook=text)
        argv = tuple(shlex.split(text))
        if not argv:
            raise ValueError("--notify needs a command or an http(s) URL")
        return cls(command=argv)

    def __str__(self) -> str:
        return self.webhook if self.webhook is not None else " ".join(self.command)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    api_base: str = DEFAULT_API_BASE
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    budget_usd: Decimal | None = None
    upload: UploadTarget | None = None
    inline_assets: bool = False
    # How long a render is expected to take before this run has seen one (None: the docs' figure for
    # the plan's media: 300 s for video, 30 s for images); it times the safety look for missed events.
    expected_render_s: float | None = None
    poll_interval_s: float = 10.0  # per-generation polling only while the event stream is down
    progress_interval_s: float = 10.0  # plain progress lines when stderr is not a terminal
    sandbox: bool = False  # the built-in emulator: its results are placeholders, never real ones
    deliver: DeliveryTarget | None = None  # the Oxen repository results are delivered to, if any
    # After a stop (Ctrl-C, SIGTERM, the library's `stop`), how long the run waits for what is in flight
    # (renders, downloads) before it leaves the rest in the journal for the rerun and ends.
    drain_timeout_s: float = DRAIN_TIMEOUT_S
    # Stop submitting once this many (or this share) of the run's finished jobs failed (`run.breaker`).
    halt_after_failures: FailureThreshold | None = None
    notify: tuple[NotifyTarget, ...] = ()  # told how the run went: at its end, and when the breaker trips

    @property
    def api_identity(self) -> str:
        """Which API results come from, as the journal records it: "sandbox", or the API's origin."""
        return SANDBOX_IDENTITY if self.sandbox else api_origin(self.api_base)

    def __post_init__(self) -> None:
        if not self.api_base.startswith(("http://", "https://")):
            raise ValueError(f"'api_base' must be an http(s) URL, got {self.api_base!r}")
        if self.budget_usd is not None:
            _positive("budget_usd", float(self.budget_usd))
        if self.expected_render_s is not None:
            _positive("expected_render_s", self.expected_render_s)
        _positive("poll_interval_s", self.poll_interval_s)
        _positive("progress_interval_s", self.progress_interval_s)
        _positive("drain_timeout_s", self.drain_timeout_s)


def options_from_manifest(run: Mapping[str, Any], upload: UploadTarget | None) -> RunOptions:
    """Build options from a manifest's validated `run:` mapping (CLI flags override later); what it
    does not set keeps the defaults of `Limits`, `Timeouts` and `RetryPolicy`."""
    timeouts = run.get("timeouts") or {}
    named = {"request_s": "request_s", "download_s": "download_read_s", "generation_s": "generation_s"}
    budget, halt = run.get("budget_usd"), run.get("halt_after_failures")
    return RunOptions(
        limits=Limits(**{key: int(run[key]) for key in ("concurrency", "downloads") if key in run}),
        timeouts=Timeouts(**{named[key]: float(value) for key, value in timeouts.items() if key in named}),
        retry=RetryPolicy(**({"generation_retries": int(run["retries"])} if "retries" in run else {})),
        budget_usd=Decimal(str(budget)) if budget is not None else None,
        upload=upload,
        halt_after_failures=None if halt is None else FailureThreshold.parse(halt),
    )


def usd(value: Any, name: str = "budget_usd") -> Decimal:
    """A budget in USD: a positive, finite amount such as 150 or "49.90"; otherwise a UsageError naming
    the argument `name` (on the command line: --budget)."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        why = f"must be an amount in USD such as 150 or 49.90, got {value!r}"
    else:
        if amount.is_finite() and amount > 0:
            return amount
        why = f"must be a positive amount in USD, got {value!r}"
    raise UsageError(f"{name} {why}", cli=f"--budget {why}")

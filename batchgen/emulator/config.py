"""Every emulator knob, as frozen dataclasses validated on construction.

Each field carries its help text in ``metadata["help"]``; the CLI and the docs are built from it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any


def _knob(default: Any, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


def _fail(owner: object, name: str, requirement: str) -> None:
    value = getattr(owner, name)
    raise ValueError(f"{type(owner).__name__}.{name} must be {requirement}, got {value!r}")


def _check_number(owner: object, name: str, *, low: float = 0.0, high: float = math.inf) -> None:
    value = getattr(owner, name)
    if value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not low <= value <= high:
        _fail(owner, name, f"a number between {low} and {high}")


def _check_positive(owner: object, name: str) -> None:
    value = getattr(owner, name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        _fail(owner, name, "a positive number")


def _check_int(owner: object, name: str, *, low: int, high: int | None = None) -> None:
    value = getattr(owner, name)
    if value is None:
        return
    too_high = high is not None and isinstance(value, int) and value > high
    if isinstance(value, bool) or not isinstance(value, int) or value < low or too_high:
        _fail(owner, name, f"an integer between {low} and {'infinity' if high is None else high}")


def _check_text(owner: object, name: str) -> None:
    value = getattr(owner, name)
    if not isinstance(value, str) or not value or value != value.strip():
        _fail(owner, name, "a non-empty string without surrounding spaces")


@dataclass(frozen=True)
class LatencyConfig:
    """How long generations wait and render, in simulated seconds (multiplied by ``time_scale``)."""

    queue_wait_median_seconds: float = _knob(
        3.0, "Median simulated wait before a worker would pick a generation up (lognormal)."
    )
    video_render_median_seconds: float = _knob(
        120.0, "Median simulated render time of a video generation (lognormal)."
    )
    image_render_median_seconds: float = _knob(
        15.0, "Median simulated render time of an image generation (lognormal)."
    )
    latency_sigma: float = _knob(0.4, "Sigma of the lognormal wait and render distributions (0 = fixed).")
    failure_delay_seconds: float = _knob(
        3.0, "Simulated seconds between a generation starting and failing on a broken model rule."
    )
    render_seconds_pattern: str | None = _knob(
        None,
        "A regular expression with one group, searched in each request's prompt: where it matches, "
        "the generation renders for exactly the group's number of simulated seconds instead of a "
        "lognormal draw (per-job render times for benchmarks; unset = off).",
    )

    def __post_init__(self) -> None:
        for name in ("queue_wait_median_seconds", "video_render_median_seconds"):
            _check_number(self, name, high=86_400)
        _check_number(self, "image_render_median_seconds", high=86_400)
        _check_number(self, "failure_delay_seconds", high=86_400)
        _check_number(self, "latency_sigma", high=3.0)
        self._check_pattern()

    def _check_pattern(self) -> None:
        pattern = self.render_seconds_pattern
        if pattern is None:
            return
        try:
            groups = re.compile(pattern).groups if isinstance(pattern, str) else 0
        except re.error:
            groups = 0
        if groups != 1:
            _fail(self, "render_seconds_pattern", "a regular expression with exactly one group")


@dataclass(frozen=True)
class FaultConfig:
    """Injected faults. All default off; replace them at runtime with ``Emulator.set_faults``."""

    generation_failure_rate: float = _knob(
        0.0, "Share of generations that fail with a transient-looking error_message (0-1)."
    )
    rate_limit_rate: float = _knob(0.0, "Share of API requests answered 429 with Retry-After (0-1).")
    rate_limit_retry_after_seconds: int = _knob(2, "Retry-After value (seconds) sent with injected 429s.")
    rate_limit_burst_seconds: float = _knob(
        0.0, "Length of a 429 storm in real seconds, during which every API request gets 429 (0 = off)."
    )
    rate_limit_burst_period_seconds: float = _knob(
        0.0, "Real seconds between the starts of 429 storms; 0 = one storm, starting when faults are set."
    )
    rate_limit_routes: tuple[str, ...] = _knob(
        (), "Routes subject to 429s, as 'METHOD /template' or '/template'; empty = every API route."
    )
    server_error_rate: float = _knob(0.0, "Share of API requests answered with a 5xx (0-1).")
    server_error_status: int = _knob(503, "HTTP status of injected server errors (500-599).")
    server_error_routes: tuple[str, ...] = _knob(
        (), "Routes subject to 5xx, as 'METHOD /template' or '/template'; empty = every API route."
    )
    slow_response_rate: float = _knob(0.0, "Share of API requests delayed before they are handled (0-1).")
    slow_response_seconds: float = _knob(1.0, "Delay of a slow API response, in real seconds.")
    slow_response_routes: tuple[str, ...] = _knob(
        (), "Routes subject to slow responses, as 'METHOD /template' or '/template'; empty = every API route."
    )
    enqueue_cut_rate: float = _knob(
        0.0,
        "Share of POST /api/ai/queue calls that create the generations but close the connection "
        "without a response (0-1).",
    )
    upload_cut_rate: float = _knob(
        0.0,
        "Share of repository writes (PUT file, workspace create/stage/commit/delete, chunk and "
        "complete uploads) that do their work, then close the connection without a response (0-1).",
    )
    upload_error_after_commit_rate: float = _knob(
        0.0,
        "Share of repository writes that do their work, then answer server_error_status instead, as "
        "a gateway that gave up on a server that did the work would (0-1).",
    )
    upload_fault_routes: tuple[str, ...] = _knob(
        (),
        "Repository write routes subject to the two faults above, as 'METHOD /template' or "
        "'/template'; empty = every repository write route.",
    )
    sse_cut_every_seconds: float | None = _knob(
        None, "Close each /api/events connection abruptly after this many real seconds."
    )
    sse_cut_after_events: int | None = _knob(
        None, "Close each /api/events connection abruptly after it delivered this many events."
    )
    download_truncate_rate: float = _knob(
        0.0, "Share of result downloads that announce the full Content-Length but close halfway (0-1)."
    )
    download_short_length_rate: float = _knob(
        0.0,
        "Share of result downloads whose Content-Length, and body, stop a quarter short of the file: "
        "a complete-looking answer that is not the whole file (0-1).",
    )
    download_bytes_per_second: float | None = _knob(
        None, "Throttle result downloads to this many bytes per second."
    )
    credits_exhaust_after_usd: float | None = _knob(
        None, "Treat the balance as zero once this many USD have been charged (credits run out)."
    )
    sse_cut_once_after_events: int | None = _knob(
        None,
        "Close the /api/events connection abruptly once, when this many completion events have been "
        "sent in total (over every connection); later connections are left alone.",
    )

    def __post_init__(self) -> None:
        for name in (
            "generation_failure_rate",
            "rate_limit_rate",
            "server_error_rate",
            "slow_response_rate",
            "enqueue_cut_rate",
            "upload_cut_rate",
            "upload_error_after_commit_rate",
            "download_truncate_rate",
            "download_short_length_rate",
        ):
            _check_number(self, name, high=1.0)
        _check_int(self, "rate_limit_retry_after_seconds", low=0, high=86_400)
        for name in (
            "rate_limit_burst_seconds",
            "rate_limit_burst_period_seconds",
            "slow_response_seconds",
            "credits_exhaust_after_usd",
        ):
            _check_number(self, name)
        _check_int(self, "server_error_status", low=500, high=599)
        _check_positive(self, "sse_cut_every_seconds")
        _check_int(self, "sse_cut_after_events", low=1)
        _check_int(self, "sse_cut_once_after_events", low=1)
        _check_positive(self, "download_bytes_per_second")
        self._check_routes("rate_limit_routes")
        self._check_routes("server_error_routes")
        self._check_routes("slow_response_routes")
        self._check_routes("upload_fault_routes")
        burst, period = self.rate_limit_burst_seconds, self.rate_limit_burst_period_seconds
        if period and burst > period:
            _fail(self, "rate_limit_burst_seconds", f"at most rate_limit_burst_period_seconds ({period})")

    def _check_routes(self, name: str) -> None:
        routes = getattr(self, name)
        if not isinstance(routes, tuple) or not all(isinstance(r, str) and "/" in r for r in routes):
            _fail(self, name, "a tuple of route strings such as 'POST /api/ai/queue'")


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything about one emulator instance."""

    host: str = _knob("127.0.0.1", "Address to bind (loopback by default).")
    port: int = _knob(0, "TCP port to bind; 0 picks a free port.")
    api_key: str = _knob("emulator-key", "The only API key accepted in 'Authorization: Bearer <key>'.")
    username: str = _knob("emulator-user", "The user that key belongs to: default namespace of every row.")
    public_base_url: str | None = _knob(
        None, "Origin used in result URLs; default: the scheme and Host of the request being answered."
    )
    time_scale: float = _knob(
        1.0, "Multiplier applied to simulated waits and render times (0.001 turns minutes into ms)."
    )
    seed: int = _knob(0, "Seed of every random choice (latencies, faults, generation ids).")
    keepalive_seconds: float = _knob(15.0, "Real seconds of SSE idleness before ': keep-alive' is sent.")
    unrelated_event_every: int = _knob(
        7, "Send an unrelated 'deployment_status' SSE event after every N completions (0 = never)."
    )
    url_ttl_seconds: float = _knob(3600.0, "Lifetime of presigned result URLs, in real seconds.")
    result_size_bytes: int = _knob(
        0, "Pad every result file to this many bytes (0 = natural size, a few KB)."
    )
    result_bytes_per_second: int = _knob(
        0,
        "Size each video result by the duration it was asked for, as real videos are: this many bytes "
        "per second of the request's `duration` (0 = off; result_size_bytes stays the floor).",
    )
    account_concurrency: int = _knob(8, "Generations of the account that may be processing at once.")
    credits_usd: float | None = _knob(None, "Starting balance in USD; unset = unlimited credits.")
    auto_create_repos: bool = _knob(
        False, "Let file uploads create missing repositories instead of answering 404."
    )
    max_upload_bytes: int = _knob(
        64 * 1024 * 1024,
        "Largest request body of a route that reads its body whole (JSON routes), in bytes; the "
        "repository upload routes stream theirs and have Oxen's own limits instead.",
    )
    put_file_memory_limit_bytes: int | None = _knob(
        2 * 1024 * 1024,
        "Bytes of form data (file parts and text fields) one PUT .../file may carry before it is "
        "refused with 400, as oxen-server's actix-multipart memory limit does (unset = no limit; "
        "the 50 MiB total limit stays).",
    )
    max_request_bytes: int | None = _knob(
        None,
        "A proxy in front of the hub: any request whose body is larger gets 413 (plain text) before "
        "it reaches the emulator's routes (unset = no proxy).",
    )
    serve_version_uploads: bool = _knob(
        True,
        "Serve the chunked version upload (POST /versions/{hash}/create, PUT .../chunks, POST "
        ".../complete); False: they answer 404, as a hub that does not serve them would.",
    )
    queue_list_cap: int | None = _knob(
        None,
        "Answer GET /api/ai/queue with at most this many rows, the oldest first (unset = all). The "
        "docs document no cap and no paging there; this shows a client that trusts the lean list.",
    )
    echo_defaults: bool = _knob(
        False,
        "Echo the model schema's default value of every parameter the request left out, in queue "
        "and history rows (as a service that fills defaults in would).",
    )
    history_newest_first: bool = _knob(
        True,
        "Order GET /api/ai/generations newest first; False: oldest first (the order is undocumented).",
    )
    private_results: bool = _knob(
        False,
        "Result downloads answer 404 unless they carry the API key, as files of a private repository "
        "would (the docs do not say whether result_url needs the key).",
    )
    events_for_other_namespaces: bool = _knob(
        True,
        "Send completion events of generations billed to another namespace (target_namespace) on "
        "the user's stream; the docs leave open whether they reach it.",
    )
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    clock_offset_seconds: float = _knob(
        0.0,
        "Seconds the emulator's clock reads ahead of the real time (negative: behind): row times, "
        "the Date header and URL expiry follow it, as a client whose own clock is wrong sees a server.",
    )
    history_page_size_cap: int | None = _knob(
        None,
        "Serve at most this many rows per GET /api/ai/generations page, whatever page_size asks "
        "(the answer's page_size and total_pages say so), as a server with a smaller limit would.",
    )
    history_ignores_page: bool = _knob(
        False, "Answer every GET /api/ai/generations with its first page, whatever page is asked."
    )

    def __post_init__(self) -> None:
        for name in ("host", "api_key", "username"):
            _check_text(self, name)
        if self.public_base_url is not None and not self.public_base_url.startswith(("http://", "https://")):
            _fail(self, "public_base_url", "an http(s) origin such as 'http://127.0.0.1:8765'")
        _check_int(self, "port", low=0, high=65_535)
        _check_number(self, "time_scale", high=1_000.0)
        _check_int(self, "seed", low=0)
        _check_positive(self, "keepalive_seconds")
        _check_int(self, "unrelated_event_every", low=0)
        _check_positive(self, "url_ttl_seconds")
        _check_int(self, "result_size_bytes", low=0, high=2**31 - 1)
        _check_int(self, "result_bytes_per_second", low=0, high=2**31 - 1)
        _check_int(self, "account_concurrency", low=1)
        _check_number(self, "credits_usd")
        _check_int(self, "max_upload_bytes", low=1024)
        _check_int(self, "put_file_memory_limit_bytes", low=0)
        _check_int(self, "max_request_bytes", low=0)
        if not isinstance(self.serve_version_uploads, bool):
            _fail(self, "serve_version_uploads", "a bool")
        _check_int(self, "queue_list_cap", low=1)
        _check_number(self, "clock_offset_seconds", low=-(10**9), high=10**9)
        _check_int(self, "history_page_size_cap", low=1)
        if not isinstance(self.latency, LatencyConfig):
            _fail(self, "latency", "a LatencyConfig")
        if not isinstance(self.faults, FaultConfig):
            _fail(self, "faults", "a FaultConfig")


def knob_names(cls: type) -> list[str]:
    """Names of the scalar knobs of a config class (nested configs excluded)."""
    return [f.name for f in fields(cls) if "help" in f.metadata]

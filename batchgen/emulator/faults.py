"""Fault injection decisions, from the current FaultConfig and a seeded RNG.

Each ``should_*``/``*_for`` method rolls the dice once and counts what it injected.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from batchgen.emulator.config import FaultConfig
from batchgen.emulator.counters import Counters

TRANSIENT_ERRORS = (
    "Getting model response error: 503 - Service temporarily unavailable, please try again later.",
    "Getting model response error: 504 - Upstream request timed out.",
    "Getting model response error: 500 - Internal server error while rendering, please retry.",
)


def route_selected(routes: tuple[str, ...], route_key: str, *, opt_in: bool = False) -> bool:
    """Whether ``route_key`` ("METHOD /template") is in ``routes``.

    An empty tuple selects every route, except opt-in routes (repositories), which must be named.
    """
    template = route_key.partition(" ")[2]
    if not routes:
        return not opt_in
    return any(entry in (route_key, template) for entry in routes)


class FaultInjector:
    def __init__(
        self,
        config: FaultConfig,
        seed: int,
        counters: Counters,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rng = random.Random(f"faults-{seed}")
        self._counters = counters
        self._monotonic = monotonic
        self._config = config
        self._epoch = monotonic()
        self._stream_cut_once = False  # sse_cut_once_after_events fired (kept when faults change)

    @property
    def config(self) -> FaultConfig:
        return self._config

    @config.setter
    def config(self, config: FaultConfig) -> None:
        if not isinstance(config, FaultConfig):
            raise TypeError(f"faults must be a FaultConfig, got {type(config).__name__}")
        self._config, self._epoch = config, self._monotonic()

    def _roll(self, rate: float, kind: str) -> bool:
        hit = rate > 0 and self._rng.random() < rate
        if hit:
            self._counters.faults[kind] += 1
        return hit

    def _burst_left(self) -> float:
        """Seconds left in the current 429 storm, 0 outside one."""
        burst, period = self._config.rate_limit_burst_seconds, self._config.rate_limit_burst_period_seconds
        elapsed = self._monotonic() - self._epoch
        phase = elapsed % period if period else elapsed
        return burst - phase if burst and phase < burst else 0.0

    def retry_after_for(self, route_key: str, *, opt_in: bool = False) -> int | None:
        """Retry-After seconds when this request must get a 429, else None."""
        if not route_selected(self._config.rate_limit_routes, route_key, opt_in=opt_in):
            return None
        left = self._burst_left()
        if left > 0:
            self._counters.faults["rate_limit_burst"] += 1
            return max(1, math.ceil(left))
        if self._roll(self._config.rate_limit_rate, "rate_limit"):
            return self._config.rate_limit_retry_after_seconds
        return None

    def server_error_for(self, route_key: str, *, opt_in: bool = False) -> int | None:
        """The 5xx status this request must get, else None."""
        if not route_selected(self._config.server_error_routes, route_key, opt_in=opt_in):
            return None
        hit = self._roll(self._config.server_error_rate, "server_error")
        return self._config.server_error_status if hit else None

    def delay_for(self, route_key: str, *, opt_in: bool = False) -> float:
        """Seconds to stall this API request before handling it."""
        if not route_selected(self._config.slow_response_routes, route_key, opt_in=opt_in):
            return 0.0
        hit = self._roll(self._config.slow_response_rate, "slow_response")
        return self._config.slow_response_seconds if hit else 0.0

    def should_cut_enqueue(self) -> bool:
        return self._roll(self._config.enqueue_cut_rate, "enqueue_cut")

    def should_cut_write(self, route_key: str) -> bool:
        """Whether a repository write that did its work must close the connection unanswered."""
        if not route_selected(self._config.upload_fault_routes, route_key):
            return False
        return self._roll(self._config.upload_cut_rate, "upload_cut")

    def write_error_after_work(self, route_key: str) -> int | None:
        """The 5xx status to answer a repository write that did its work with, else None."""
        if not route_selected(self._config.upload_fault_routes, route_key):
            return None
        hit = self._roll(self._config.upload_error_after_commit_rate, "upload_error_after_commit")
        return self._config.server_error_status if hit else None

    def should_truncate_download(self) -> bool:
        return self._roll(self._config.download_truncate_rate, "download_truncated")

    def should_shorten_download(self) -> bool:
        return self._roll(self._config.download_short_length_rate, "download_short_length")

    def transient_failure(self) -> str | None:
        """A transient-looking error_message when this generation must fail, else None."""
        if not self._roll(self._config.generation_failure_rate, "generation_failure"):
            return None
        return self._rng.choice(TRANSIENT_ERRORS)

    def should_cut_stream_once(self) -> bool:
        """Whether sse_cut_once_after_events is reached now, for the first (and only) time."""
        after = self._config.sse_cut_once_after_events
        if after is None or self._stream_cut_once or self._counters.events_sent < after:
            return False
        self._stream_cut_once = True
        return True

    def count(self, kind: str) -> None:
        self._counters.faults[kind] += 1

"""Drives generations through the fake queue with event-loop timers (no polling, no tasks).

Simulated seconds are multiplied by ``time_scale`` to get real delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
from collections.abc import Callable

from batchgen.emulator import rules
from batchgen.emulator.catalog import Catalog
from batchgen.emulator.config import EmulatorConfig
from batchgen.emulator.faults import FaultInjector
from batchgen.emulator.media import make_result
from batchgen.emulator.model import FakeQueue, Generation
from batchgen.emulator.pricing import Ledger, result_size
from batchgen.emulator.urls import result_path

INSUFFICIENT_CREDITS = "Insufficient credits"


class Engine:
    def __init__(
        self,
        queue: FakeQueue,
        catalog: Catalog,
        config: EmulatorConfig,
        faults: FaultInjector,
        ledger: Ledger,
        fetch: Callable[[str], bool],
        on_finished: Callable[[Generation], None],
    ) -> None:
        self._queue, self._catalog, self._config = queue, catalog, config
        self._faults, self._ledger, self._fetch = faults, ledger, fetch
        self._on_finished = on_finished
        self._rng = random.Random(f"latency-{config.seed}")
        pattern = config.latency.render_seconds_pattern
        self._fixed_render = re.compile(pattern) if pattern else None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._waiters: list[asyncio.Future[None]] = []
        self.fetched_references: list[str] = []

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for gen in self._queue.all():
            if gen.status == "queued":
                self._schedule(gen, 0.0, self._on_ready)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._loop = None

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Resolve once ``predicate()`` holds; it is re-checked after every state transition."""
        while not predicate():
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def submit(self, generations: list[Generation]) -> None:
        """Start the clock on freshly enqueued generations."""
        self._idle.clear()
        latency = self._config.latency
        for gen in generations:
            self._schedule(gen, self._sample(latency.queue_wait_median_seconds), self._on_ready)
        self._changed()

    def cancel(self, gen: Generation) -> bool:
        if not self._queue.cancel(gen):
            return False
        timer = self._timers.pop(gen.generation_id, None)
        if timer:
            timer.cancel()
        self._pump()
        return True

    def _sample(self, median: float) -> float:
        if median <= 0:
            return 0.0
        return self._rng.lognormvariate(math.log(median), self._config.latency.latency_sigma)

    def _schedule(self, gen: Generation, simulated: float, callback: Callable[[Generation], None]) -> None:
        if self._loop is None:
            return  # not running: start() reschedules queued rows
        delay = simulated * self._config.time_scale
        self._timers[gen.generation_id] = self._loop.call_later(delay, self._fire, gen, callback)

    def _fire(self, gen: Generation, callback: Callable[[Generation], None]) -> None:
        self._timers.pop(gen.generation_id, None)
        callback(gen)

    def _on_ready(self, gen: Generation) -> None:
        if gen.status == "queued":
            self._queue.mark_ready(gen)
            self._pump()

    def _pump(self) -> None:
        for gen in self._queue.take_startable():
            self._begin(gen)
        if self._queue.active_count == 0:
            self._idle.set()
        self._changed()

    def _begin(self, gen: Generation) -> None:
        error = self._outcome(gen)
        self._queue.start(gen)
        latency = self._config.latency
        if error is not None:
            self._schedule(gen, latency.failure_delay_seconds, lambda g: self._finish(g, error))
            return
        self._schedule(gen, self._render_seconds(gen), lambda g: self._finish(g, None))

    def _render_seconds(self, gen: Generation) -> float:
        """The prompt's own render time when render_seconds_pattern finds one, else a lognormal draw."""
        prompt = gen.request.get("prompt")
        found = self._fixed_render.search(prompt) if self._fixed_render and isinstance(prompt, str) else None
        if found:
            with contextlib.suppress(ValueError, TypeError):  # a group that is not a number: draw instead
                return max(0.0, float(found.group(1)))
        latency = self._config.latency
        median = (
            latency.video_render_median_seconds
            if gen.media_type == "video"
            else latency.image_render_median_seconds
        )
        return self._sample(median)

    def _outcome(self, gen: Generation) -> str | None:
        """Why ``gen`` will fail, decided as it starts: credits, then model rules, then injected faults."""
        committed = self._queue.committed(include_queued=False)
        if not self._ledger.can_cover(gen.price, committed, self._faults.config.credits_exhaust_after_usd):
            return INSUFFICIENT_CREDITS
        spec = self._catalog.get(gen.model_id)
        rule_set = spec.rules if spec else "none"
        return (
            rules.check(rule_set, gen.request, lambda url: self._fetch_for(gen, url))
            or self._faults.transient_failure()
        )

    def _fetch_for(self, gen: Generation, url: str) -> bool:
        fetched = self._fetch(url)
        if fetched:
            gen.fetched_references.append(url)
            self.fetched_references.append(url)
        return fetched

    def _finish(self, gen: Generation, error: str | None) -> None:
        if error is not None:
            self._queue.fail(gen, error)
        else:
            result = make_result(gen.media_type, gen.generation_id, result_size(self._config, gen))
            path = result_path(gen.namespace, gen.repo, gen.directory, gen.generation_id, result.extension)
            self._queue.succeed(gen, result, path)
            self._ledger.charge(gen.price)
        self._on_finished(gen)
        self._pump()

"""One emulator's whole state, wired together; shared by the routes and the Python API."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from typing import Any

from batchgen.emulator.catalog import Catalog, ModelSpec, default_catalog
from batchgen.emulator.clock import Clock, OffsetClock, SystemClock
from batchgen.emulator.config import EmulatorConfig
from batchgen.emulator.counters import Counters
from batchgen.emulator.engine import Engine
from batchgen.emulator.events import EventHub
from batchgen.emulator.faults import FaultInjector
from batchgen.emulator.media import make_result
from batchgen.emulator.model import FakeQueue, Generation, Status
from batchgen.emulator.pricing import Ledger, estimate, result_size
from batchgen.emulator.repos import RepoStore
from batchgen.emulator.timeline import Timeline
from batchgen.emulator.urls import UrlSigner, result_path

RESULTS_REPO = "ai-generations"


class InsufficientCredits(Exception):
    """The balance, minus what active generations may still cost, cannot cover an enqueue."""


class EmulatorState:
    def __init__(self, config: EmulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        offset = config.clock_offset_seconds
        self.clock: Clock = clock or (OffsetClock(offset) if offset else SystemClock())
        self.counters = Counters()
        self.timeline = Timeline()  # measurement marks for benchmarks (monotonic clock)
        self.catalog: Catalog = default_catalog().copy()
        self.repos = RepoStore(self.clock)
        self.repos.seed_examples()
        self.queue = FakeQueue(self.clock, config.account_concurrency)
        self.ledger = Ledger(config.credits_usd)
        self.faults = FaultInjector(config.faults, config.seed, self.counters)
        self.hub = EventHub(config.unrelated_event_every)
        self.signer = UrlSigner(self.clock, config.url_ttl_seconds)
        self.engine = Engine(
            self.queue, self.catalog, config, self.faults, self.ledger, self.repos.fetch, self._finished
        )
        self.results: dict[str, str] = {}  # result path -> generation id
        # Test hook (Emulator.override_model): model id -> raw body served by GET /api/ai/models/{id}.
        self.model_overrides: dict[str, bytes] = {}
        self._ids = random.Random(f"ids-{config.seed}")

    def _finished(self, gen: Generation) -> None:
        self.timeline.mark(gen.generation_id, "terminal")
        if gen.result_path:
            self.results[gen.result_path] = gen.generation_id
        if gen.namespace == self.config.username or self.config.events_for_other_namespaces:
            self.hub.publish_completion(gen)

    def echoed_defaults(self, gen: Generation) -> dict[str, Any]:
        """Schema defaults a row echoes for parameters left out (only with ``echo_defaults``)."""
        if not self.config.echo_defaults:
            return {}
        spec = self.catalog.get(gen.model_id)
        schema = (spec.public.get("request_schema") or {}) if spec else {}
        properties = schema.get("properties") or {}
        return {
            name: prop["default"]
            for name, prop in properties.items()
            if isinstance(prop, dict) and "default" in prop
        }

    def add_past_generation(
        self,
        spec: ModelSpec,
        body: dict[str, Any],
        *,
        namespace: str,
        enqueued_at: float,
        status: Status,
        error_message: str | None = None,
    ) -> Generation:
        """A terminal row from before now, as an account with older work has (no event, no charge)."""
        gen = self._new_generation(spec, body, estimate(spec, body), namespace)
        gen.enqueued_at = enqueued_at
        self.queue.add(gen)
        result = path = None
        if status == "succeeded":
            result = make_result(gen.media_type, gen.generation_id, result_size(self.config, gen))
            path = result_path(gen.namespace, gen.repo, gen.directory, gen.generation_id, result.extension)
            self.results[path] = gen.generation_id
        self.queue.force_terminal(gen, status, error_message, result, path)
        return gen

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def enqueue(self, spec: ModelSpec, body: dict[str, Any], count: int, namespace: str) -> list[Generation]:
        """Create ``count`` queued generations of ``body``; raises InsufficientCredits."""
        assert spec.media_type is not None
        price = estimate(spec, body)
        committed = self.queue.committed(include_queued=True)
        exhaust = self.faults.config.credits_exhaust_after_usd
        if not self.ledger.can_cover(price * count, committed, exhaust):
            raise InsufficientCredits
        generations = [self._new_generation(spec, body, price, namespace) for _ in range(count)]
        for gen in generations:
            self.queue.add(gen)
        self.counters.count_enqueue(body, count)
        self.engine.submit(generations)
        return generations

    def _new_generation(
        self, spec: ModelSpec, body: dict[str, Any], price: Decimal, namespace: str
    ) -> Generation:
        assert spec.media_type is not None
        return Generation(
            generation_id=self._new_id(),
            model_id=spec.id,
            media_type=spec.media_type,
            request=dict(body),
            namespace=namespace,
            repo=RESULTS_REPO,
            directory=spec.id,
            price=price,
            enqueued_at=self.clock.time(),
            seq=self.queue.next_seq(),
        )

    def result_url(self, gen: Generation, origin: str) -> str | None:
        """A freshly presigned URL of a succeeded generation's result, else None."""
        if gen.status != "succeeded" or gen.result_path is None:
            return None
        return self.signer.mint(self.config.public_base_url or origin, gen.result_path)

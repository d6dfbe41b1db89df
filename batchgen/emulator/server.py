"""Run an emulator on a real socket, and the Python API tests and benchmarks use."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from types import TracebackType
from typing import Any

from aiohttp import web

from batchgen.emulator.app import build_app
from batchgen.emulator.clock import Clock
from batchgen.emulator.config import EmulatorConfig, FaultConfig
from batchgen.emulator.counters import Counters
from batchgen.emulator.model import Generation, Status
from batchgen.emulator.pricing import usd as to_usd
from batchgen.emulator.repos import DEFAULT_BRANCH, Commit, Repo, StoredFile
from batchgen.emulator.state import EmulatorState
from batchgen.emulator.timeline import Marks, Timeline
from batchgen.emulator.workspaces import WorkspaceInfo, info

SHUTDOWN_TIMEOUT = 5.0


class Emulator:
    """One emulator instance: ``await start()`` / ``await stop()``, or ``async with``."""

    def __init__(self, config: EmulatorConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config, clock)
        self.app = build_app(self.state)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._port = runner, runner.addresses[0][1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` without a trailing slash; only while running."""
        if self._port is None:
            raise RuntimeError("the emulator is not running: await start() first")
        host = self.config.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self._port}"

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def counters(self) -> Counters:
        return self.state.counters

    def generation(self, generation_id: str) -> Generation:
        """The live record of a generation; raises KeyError if it does not exist."""
        gen = self.state.queue.get(generation_id)
        if gen is None:
            raise KeyError(generation_id)
        return gen

    @property
    def timeline(self) -> Timeline:
        """Measurement marks (monotonic seconds) of every generation, for benchmarks."""
        return self.state.timeline

    def marks(self, generation_id: str) -> Marks:
        """When the generation became terminal, its event was sent, its result first requested."""
        return self.state.timeline.get(generation_id)

    def generations(self) -> list[Generation]:
        return self.state.queue.all()

    def result_sha256(self, generation_id: str) -> str:
        """SHA-256 (hex) of a succeeded generation's result bytes; KeyError if it has none."""
        digest = self.generation(generation_id).result_sha256
        if digest is None:
            raise KeyError(f"generation {generation_id} has no result")
        return digest

    @property
    def fetched_references(self) -> list[str]:
        """Every reference URL a model fetched successfully, in order."""
        return self.state.engine.fetched_references

    @property
    def faults(self) -> FaultConfig:
        return self.state.faults.config

    @faults.setter
    def faults(self, faults: FaultConfig) -> None:
        self.state.faults.config = faults

    def set_faults(self, **changes: Any) -> FaultConfig:
        """Change some fault knobs (validated); the others keep their values."""
        self.state.faults.config = dataclasses.replace(self.state.faults.config, **changes)
        return self.state.faults.config

    def seed_history(
        self,
        count: int,
        request: dict[str, Any],
        *,
        namespace: str | None = None,
        age_seconds: float = 86_400.0,
        status: Status = "succeeded",
    ) -> list[Generation]:
        """Add ``count`` terminal rows enqueued ``age_seconds`` ago (spread over the hour before), made
        from ``request`` (an enqueue body with ``model``): an account with older work on it. They
        send no events and charge nothing now."""
        spec = self.state.catalog.get(str(request.get("model")))
        if spec is None or spec.media_type is None:
            raise ValueError(f"not an image or video model: {request.get('model')!r}")
        now = self.state.clock.time()
        body = {k: v for k, v in request.items() if k != "num_generations"}
        return [
            self.state.add_past_generation(
                spec,
                dict(body),
                namespace=namespace or self.config.username,
                enqueued_at=now - age_seconds - 3600.0 * (count - i) / max(1, count),
                status=status,
                error_message="Seeded failure" if status == "failed" else None,
            )
            for i in range(count)
        ]

    def override_model(self, model_id: str, answer: Any) -> None:
        """Test hook: answer ``GET /api/ai/models/{model_id}`` with ``answer`` instead of the registry's
        model object. ``bytes`` are sent as they are (for JSON too deep to serialise, or not JSON at
        all); anything else is serialised as JSON (``None`` is ``null``). Listing, search and the
        queue are unaffected. Undo with ``restore_model``.
        """
        if not isinstance(model_id, str) or not model_id:
            raise ValueError("model_id must be a non-empty string")
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.state.model_overrides[model_id] = body

    def restore_model(self, model_id: str) -> None:
        """Serve the registry's own answer for ``model_id`` again."""
        self.state.model_overrides.pop(model_id, None)

    def _repo(self, namespace: str, name: str) -> Repo:
        repo = self.state.repos.repo(namespace, name)
        if repo is None:
            raise KeyError(f"no repository {namespace}/{name}")
        return repo

    def create_repo(
        self,
        namespace: str,
        name: str,
        *,
        description: str = "",
        read_only: bool = False,
        is_public: bool | None = None,
    ) -> bool:
        """Create an empty repository (no commit, no branch yet); False if it already exists.
        `is_public=False`: its files answer 404 without the key, and no model can fetch them."""
        return self.state.repos.create(namespace, name, description, read_only=read_only, is_public=is_public)

    def set_repo_read_only(self, namespace: str, name: str, read_only: bool = True) -> None:
        """Let the emulator's key read but not write a repository (uploads and branch creation get 403)."""
        self._repo(namespace, name).read_only = read_only

    def repo_files(self, namespace: str, name: str, revision: str = DEFAULT_BRANCH) -> dict[str, StoredFile]:
        """Every file (path -> ``.data``, ``.content_type``, ``.sha256``) at a branch or commit id."""
        tree = self._repo(namespace, name).tree(revision)
        if tree is None:
            raise KeyError(f"no branch or commit {revision!r} in {namespace}/{name}")
        return dict(tree)

    def repo_file(self, namespace: str, name: str, path: str, revision: str = DEFAULT_BRANCH) -> StoredFile:
        """One file at a branch (its newest version) or at a commit id; KeyError if it is not there."""
        return self.repo_files(namespace, name, revision)[path.strip("/")]

    def repo_commits(
        self, namespace: str, name: str, revision: str = DEFAULT_BRANCH, path: str = ""
    ) -> list[Commit]:
        """The history of a branch or commit id, oldest first, each with the paths it ``added`` and
        ``modified``; only the commits touching ``path`` when one is given. Empty for an empty repository."""
        repo = self._repo(namespace, name)
        commit_id = repo.resolve(revision)
        if commit_id is None and not repo.is_empty:
            raise KeyError(f"no branch or commit {revision!r} in {namespace}/{name}")
        return [] if commit_id is None else list(reversed(repo.history(commit_id, path)))

    def workspaces(self, namespace: str, name: str) -> list[WorkspaceInfo]:
        """The live workspaces of a repository, oldest first: ``id``, ``name``, ``branch`` (the one it
        was created on), ``base_commit``, ``staged`` (the repository paths staged, sorted) and
        ``created_at``. Empty once every workspace was committed (unnamed) or deleted."""
        return [info(workspace) for workspace in self._repo(namespace, name).workspaces.values()]

    def add_credits(self, usd: float) -> None:
        """Top the balance up by ``usd`` dollars (a no-op on unlimited credits)."""
        self.state.ledger.add(to_usd(usd))

    @property
    def credits_remaining(self) -> Decimal | None:
        """The balance in USD; None when credits are unlimited."""
        return self.state.ledger.balance

    async def wait_for_status(self, generation_id: str, *statuses: str) -> Generation:
        """Resolve once the generation has reached one of ``statuses`` (default: any terminal one).

        It may have moved on since; read ``.status`` for where it is now.
        """
        wanted = set(statuses or ("succeeded", "failed", "cancelled"))
        gen = self.generation(generation_id)
        await self.state.engine.wait_until(lambda: not wanted.isdisjoint(gen.history))
        return gen

    async def wait_idle(self) -> None:
        """Resolve when no generation is queued or processing (wrap in asyncio.timeout to bound it)."""
        await self.state.engine.wait_idle()


@asynccontextmanager
async def run_emulator(
    config: EmulatorConfig | None = None, *, clock: Clock | None = None
) -> AsyncIterator[Emulator]:
    """A running emulator (127.0.0.1, free port by default), stopped on exit."""
    emulator = Emulator(config, clock=clock)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()

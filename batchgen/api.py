"""The Oxen inference API as typed async calls; aiohttp errors are mapped to batchgen's in one place.

The API key is sent only to the API's own origin and never appears in an error message.
Every call first waits out a shared Retry-After pause, so one 429 pauses every caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp

from batchgen.config import RetryPolicy, Timeouts
from batchgen.errors import (
    ApiError,
    ApiStatusError,
    ConnectFailed,
    InsufficientCredits,
    NotFound,
    RateLimited,
    ResponseLost,
    ResponseTimeout,
    TransportError,
    Unauthenticated,
)
from batchgen.retry import backoff, parse_retry_after

log = logging.getLogger(__name__)
T = TypeVar("T")


class Throttle:
    """One pause shared by every API call of a run: set by a 429's Retry-After."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self.paused_s = 0.0  # total time callers were held, for the progress line

    def pause(self, seconds: float) -> None:
        self._until = max(self._until, self._clock() + seconds)

    def remaining(self) -> float:
        return max(0.0, self._until - self._clock())

    async def wait_clear(self) -> None:
        while (left := self.remaining()) > 0:
            self.paused_s += left
            await asyncio.sleep(left)


@dataclass(frozen=True, slots=True)
class Completion:
    """A generation reached succeeded or failed (from the event stream or a reconcile)."""

    generation_id: str
    status: str  # "succeeded" | "failed"
    url: str | None = None
    error: str | None = None


def error_detail(body: Any, fallback: str) -> str:
    """The most useful human text in one of Oxen's error envelopes."""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, str) and err:
            return err
        if isinstance(err, Mapping):
            for key in ("detail", "message", "title", "type"):
                if isinstance(err.get(key), str) and err[key]:
                    return str(err[key])
        for key in ("error_message", "status_message", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return fallback


def _status_error(status: int, method: str, path: str, body: Any, headers: Mapping[str, str]) -> ApiError:
    detail = error_detail(body, f"HTTP {status}")
    if status == 429:
        return RateLimited(method, path, detail, parse_retry_after(headers.get("Retry-After")))
    if "insufficient credits" in detail.lower() or status == 402:
        return InsufficientCredits(status, method, path, detail)
    if status == 401:
        return Unauthenticated(status, method, path, f"{detail} (check OXEN_API_KEY or --api-key)")
    if status == 404:
        return NotFound(status, method, path, detail)
    return ApiStatusError(status, method, path, detail)


def is_transient(exc: BaseException) -> bool:
    """Worth trying again: lost connections, 429, 5xx and 408."""
    if isinstance(exc, TransportError | RateLimited):
        return True
    return isinstance(exc, ApiStatusError) and (exc.status >= 500 or exc.status == 408)


@contextlib.contextmanager
def _mapped_errors(method: str, path: str) -> Iterator[None]:
    """The single place aiohttp's exceptions become batchgen's (the cause is chained)."""
    try:
        yield
    except aiohttp.ClientConnectorError as exc:  # refused, DNS, TLS: nothing was sent
        raise ConnectFailed(f"{method} {path}: cannot connect: {exc.os_error}") from exc
    except TimeoutError as exc:
        raise ResponseTimeout(f"{method} {path}: no response within the timeout") from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise ResponseLost(f"{method} {path}: the response was lost ({type(exc).__name__})") from exc
    except aiohttp.ClientResponseError as exc:
        raise ApiStatusError(exc.status, method, path, exc.message) from exc
    except aiohttp.ClientError as exc:
        raise ResponseLost(f"{method} {path}: {type(exc).__name__}: {exc}") from exc


class OxenClient:
    """Typed calls to the Oxen API. Owns its aiohttp session unless one is given."""

    def __init__(self, api_base: str, api_key: str, *, timeouts: Timeouts | None = None,
                 retry: RetryPolicy | None = None, throttle: Throttle | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.api_base = api_base.rstrip("/")
        self._origin = urlsplit(self.api_base)
        self._key = api_key
        self.timeouts = timeouts or Timeouts()
        self.retry_policy = retry or RetryPolicy()
        self.throttle = throttle or Throttle()
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self.requests_sent = 0

    async def __aenter__(self) -> OxenClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeouts.request_s, connect=self.timeouts.connect_s),
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("OxenClient used outside 'async with'")
        return self._session

    def url(self, path: str) -> str:
        return self.api_base + path

    def _auth(self, url: str) -> dict[str, str]:
        """The Authorization header, only for the API's own origin."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (self._origin.scheme, self._origin.netloc):
            return {}
        return {"Authorization": f"Bearer {self._key}"}

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      params: Mapping[str, str] | None = None, data: Any = None) -> Any:
        """One HTTP call, no retries: the parsed JSON body, or a mapped error."""
        await self.throttle.wait_clear()
        url = self.url(path)
        self.requests_sent += 1
        with _mapped_errors(method, path):
            async with self.session.request(method, url, json=json_body, params=params, data=data,
                                            headers=self._auth(url)) as resp:
                text = await resp.text()
                body = _parse_json(text)
                if resp.status >= 400:
                    error = _status_error(resp.status, method, path, body, resp.headers)
                    if isinstance(error, RateLimited):
                        self.throttle.pause(error.retry_after if error.retry_after is not None else 5.0)
                    raise error
                return body

    async def with_retries(self, call: Callable[[], Awaitable[T]], *, what: str,
                           retry_if: Callable[[BaseException], bool] = is_transient) -> T:
        """Run an idempotent call, retrying transient failures with capped, jittered backoff."""
        rng = random.Random()
        attempt = 0
        while True:
            try:
                return await call()
            except ApiError as exc:
                # A 429 is the server asking us to wait, not a failure: it costs no attempt.
                attempt += 0 if isinstance(exc, RateLimited) else 1
                if not retry_if(exc) or attempt >= self.retry_policy.request_attempts:
                    raise
                delay = 0.0 if isinstance(exc, RateLimited) else backoff(attempt, self.retry_policy, rng)
                log.info("retrying %s after %s (attempt %d)", what, exc, attempt)
                await self._sleep(delay)

    # -- the endpoints -------------------------------------------------------------------

    async def enqueue(self, body: Mapping[str, Any]) -> list[str]:
        """POST /api/ai/queue once (never retried here: a lost answer must be reconciled)."""
        answer = await self.request("POST", "/api/ai/queue", json_body=dict(body))
        generations = answer.get("generations") if isinstance(answer, Mapping) else None
        if not generations:
            detail = error_detail(answer, "no generations in the response")
            raise ApiStatusError(200, "POST", "/api/ai/queue", detail)
        return [str(g["generation_id"]) for g in generations]

    async def get_generation(self, generation_id: str) -> dict[str, Any]:
        path = f"/api/ai/queue/{quote(generation_id, safe='')}"
        return dict(await self.with_retries(lambda: self.request("GET", path), what=f"GET {path}"))

    async def list_queue(self, *, model: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("model", model), ("status", status)) if v}
        answer = await self.with_retries(
            lambda: self.request("GET", "/api/ai/queue", params=params), what="GET /api/ai/queue"
        )
        return [dict(g) for g in answer.get("generations", [])]

    async def list_every_status(self, models: Iterable[str]) -> list[dict[str, Any]]:
        """Every queue row of these models, whatever its status (the listing has no 'all' filter).

        Active rows are listed first: a row only moves forward (active to terminal), so it cannot
        slip between the lists unseen.
        """
        rows: list[dict[str, Any]] = []
        for model in sorted(set(models)):
            for status in (None, "succeeded", "failed", "cancelled"):
                rows.extend(await self.list_queue(model=model, status=status))
        return rows

    async def cancel(self, generation_id: str) -> None:
        path = f"/api/ai/queue/{quote(generation_id, safe='')}"
        await self.with_retries(lambda: self.request("DELETE", path), what=f"DELETE {path}")

    async def get_model(self, model_id: str) -> Any:
        """The registry's answer as parsed JSON, unchecked (`ModelSpec.from_api` judges it)."""
        path = f"/api/ai/models/{quote(model_id, safe='')}"
        answer = await self.with_retries(lambda: self.request("GET", path), what=f"GET {path}")
        if isinstance(answer, Mapping) and isinstance(answer.get("data"), Mapping):
            answer = answer["data"]
        return answer

    def file_url(self, namespace: str, repo: str, branch: str, path: str) -> str:
        parts = "/".join(quote(p, safe="") for p in (namespace, repo))
        return self.url(f"/api/repos/{parts}/file/{quote(branch, safe='')}/{quote(path)}")

    async def file_exists(self, url: str) -> bool:
        """HEAD a repository file (public repos need no key)."""
        path = urlsplit(url).path
        await self.throttle.wait_clear()
        with _mapped_errors("HEAD", path):
            async with self.session.head(url, headers=self._auth(url)) as resp:
                return resp.status == 200

    async def upload_file(self, namespace: str, repo: str, branch: str, path: str, content: bytes,
                          content_type: str) -> str:
        """PUT one file into an Oxen repository; returns the URL a model can fetch it from."""
        url = self.file_url(namespace, repo, branch, path)
        api_path = urlsplit(url).path

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("file", content, filename=path.rsplit("/", 1)[-1], content_type=content_type)
            data.add_field("message", f"batchgen: add reference image {path}")
            data.add_field("name", "batchgen")
            data.add_field("email", "batchgen@users.noreply.oxen.ai")
            return data

        await self.with_retries(lambda: self.request("PUT", api_path, data=form()), what=f"PUT {api_path}")
        return url

    @contextlib.asynccontextmanager
    async def open_events(self) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET /api/events with no total timeout (the caller runs an idle watchdog)."""
        await self.throttle.wait_clear()
        url = self.url("/api/events")
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeouts.connect_s, sock_read=None)
        self.requests_sent += 1
        with _mapped_errors("GET", "/api/events"):
            resp = await self.session.get(
                url, headers={**self._auth(url), "Accept": "text/event-stream"}, timeout=timeout
            )
        try:
            if resp.status >= 400:
                text = await resp.text()
                error = _status_error(resp.status, "GET", "/api/events", _parse_json(text), resp.headers)
                if isinstance(error, RateLimited):
                    self.throttle.pause(error.retry_after if error.retry_after is not None else 5.0)
                raise error
            yield resp
        finally:
            resp.release()


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return {"error": text[:300]}
    except RecursionError:  # JSON nested about a thousand levels deep
        return {"error": "the answer is JSON nested too deeply to read"}

"""The Oxen inference API as typed async calls; aiohttp errors are mapped to batchgen's in one place
(`mapped_errors`, which the client's other modules use too).

The API key is sent only to the API's own origin and never appears in an error message.
Every call first waits out a shared Retry-After pause, so one 429 pauses every caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp

from batchgen.client.history import HISTORY_PAGE_SIZE, Page, page_of, read_since
from batchgen.client.reconcile import Scope, merge_rows
from batchgen.client.serverclock import ServerClock, parse_http_date
from batchgen.config import RetryPolicy, Timeouts
from batchgen.errors import (
    ApiError,
    ApiStatusError,
    ConnectFailed,
    HistoryUnreadable,
    InsufficientCredits,
    NotFound,
    RateLimited,
    ResponseLost,
    ResponseTimeout,
    Unauthenticated,
)
from batchgen.retry import attempts, retryable

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Who batchgen writes to Oxen as: the repositories it creates and the commits it makes.
AUTHOR = {"name": "batchgen", "email": "batchgen@users.noreply.oxen.ai"}


class Throttle:
    """One pause shared by every API call of a run: set by a 429's Retry-After."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.until = 0.0  # when the pause ends, on the throttle's clock (time.monotonic by default)
        self.paused_s = 0.0  # total time callers were held, for the progress line

    def pause(self, seconds: float) -> None:
        self.until = max(self.until, self._clock() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.until - self._clock())

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


def field_of(answer: Any, *keys: str) -> Any:
    """`answer[key][key]...` of a parsed answer, or None where a level is missing or not an object."""
    for key in keys:
        answer = answer.get(key) if isinstance(answer, Mapping) else None
    return answer


def repo_path(namespace: str, repo: str) -> str:
    """The API path of a repository (`/api/repos/{namespace}/{repo}`), each name quoted whole."""
    return "/api/repos/" + "/".join(quote(p, safe="") for p in (namespace, repo))


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
        for key in ("error_message", "status_description", "status_message", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
    return fallback


#: The statuses whose text may say the credits ran out: refusals, not "who are you" (401), "not there"
#: (404), "too slow" (408, which may have created the generation) or a 5xx (which may have, too).
_REFUSALS = frozenset({400, 403, 409, 422})


def _says_out_of_credits(body: Any) -> bool:
    """Whether any field of an error answer says the credits ran out: the status of that refusal at
    enqueue is not documented, and the phrase may be in a field `error_detail` does not pick."""
    try:
        text = json.dumps(body, ensure_ascii=False).lower()
    except RecursionError:  # a body nested near the parser's limit
        return False
    return "insufficient credits" in text or "insufficient_credits" in text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = parse_http_date(value.strip())
    return None if when is None else max(0.0, when - (now or datetime.now(UTC)).timestamp())


def _status_error(
    status: int, method: str, path: str, body: Any, headers: Mapping[str, str]
) -> ApiError | Unauthenticated:
    detail = error_detail(body, f"HTTP {status}")
    if status == 429:
        return RateLimited(method, path, detail, parse_retry_after(headers.get("Retry-After")))
    if status == 402 or (status in _REFUSALS and _says_out_of_credits(body)):
        return InsufficientCredits(status, method, path, detail)
    if status == 401:
        return Unauthenticated(status, method, path, f"{detail} (check OXEN_API_KEY or --api-key)")
    if status == 404:
        return NotFound(status, method, path, detail)
    return ApiStatusError(status, method, path, detail)


@contextlib.contextmanager
def mapped_errors(method: str, path: str) -> Iterator[None]:
    """The single place aiohttp's exceptions become batchgen's (the cause is chained). Messages name
    the exception's class, never its text, which may quote a presigned URL's token."""
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
        raise ResponseLost(f"{method} {path}: {type(exc).__name__}") from exc


def without_silent_resends(session: aiohttp.ClientSession) -> aiohttp.ClientSession:
    """Turn off aiohttp's own second try of an idempotent request (GET, PUT, DELETE...) whose connection
    dropped before the answer (`ClientSession._retry_connection`, on by default and with no public
    switch in aiohttp 3.14; its own test client turns it off the same way). A cut PUT to a repository
    would otherwise commit twice; what to do after a lost answer is `retry.decide`'s call."""
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


class OxenClient:
    """Typed calls to the Oxen API, through an aiohttp session of its own (`without_silent_resends`)."""

    def __init__(
        self,
        api_base: str,
        api_key: str,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        throttle: Throttle | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self._origin = urlsplit(self.api_base)
        self._key = api_key
        self.timeouts = timeouts or Timeouts()
        self.retry_policy = retry or RetryPolicy()
        self.throttle = throttle or Throttle()
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self.requests_sent = 0
        self.server_clock = ServerClock()  # the provider's clock against ours, from its answers' Date

    async def __aenter__(self) -> OxenClient:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeouts.request_s, connect=self.timeouts.connect_s),
            raise_for_status=False,
        )
        without_silent_resends(self._session)  # a cut PUT is never sent again unseen
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

    def auth_for(self, url: str) -> dict[str, str]:
        """The Authorization header, only for the API's own origin (empty for any other host)."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (self._origin.scheme, self._origin.netloc):
            return {}
        return {"Authorization": f"Bearer {self._key}"}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        """One HTTP call, no retries: the parsed JSON body, or a mapped error."""
        await self.throttle.wait_clear()
        url = self.url(path)
        auth, wait = {**(headers or {}), **self.auth_for(url)}, client_timeout or self.session.timeout
        self.requests_sent += 1
        sent_at = time.time()
        with mapped_errors(method, path):
            async with self.session.request(
                method, url, json=json_body, params=params, data=data, headers=auth, timeout=wait
            ) as resp:
                self.server_clock.observe(resp.headers.get("Date"), sent_at, time.time())
                body = _parse_json(await resp.text())
                if resp.status >= 400:
                    self._raise_status(resp, method, path, body)
                return body

    def _raise_status(self, resp: aiohttp.ClientResponse, method: str, path: str, body: Any) -> NoReturn:
        """An error answer as batchgen's error; a 429 first pauses every caller (`Throttle`)."""
        error = _status_error(resp.status, method, path, body, resp.headers)
        if isinstance(error, RateLimited):
            self.throttle.pause(error.wait_s)
        raise error

    async def retried(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, json_body: Any = None
    ) -> Any:
        """`request` for a call that may be sent again (a read, an idempotent write), with retries."""
        return await self.with_retries(
            lambda: self.request(method, path, params=params, json_body=json_body), what=f"{method} {path}"
        )

    async def retried_or_none(self, method: str, path: str, params: Mapping[str, str] | None = None) -> Any:
        """`retried`, but None when the server answers 404 (and {} for an empty answer)."""
        try:
            answer = await self.retried(method, path, params=params)
        except NotFound:
            return None
        return {} if answer is None else answer

    async def with_retries(self, call: Callable[[], Awaitable[T]], *, what: str) -> T:
        """Run an idempotent call, trying again on transient failures (`retry.retryable`)."""
        policy = self.retry_policy
        tries = attempts(policy, limit=policy.request_attempts, on=retryable, what=what, sleep=self._sleep)
        async for attempt in tries:
            with attempt:
                return await call()
        raise tries.error

    # -- the endpoints -------------------------------------------------------------------

    async def enqueue(self, body: Mapping[str, Any]) -> list[str]:
        """POST /api/ai/queue once (never retried here: a lost answer must be reconciled)."""
        answer = await self.request("POST", "/api/ai/queue", json_body=dict(body))
        generations = field_of(answer, "generations")
        if not generations:
            detail = error_detail(answer, "no generations in the response")
            raise ApiStatusError(200, "POST", "/api/ai/queue", detail)
        return [str(g["generation_id"]) for g in generations]

    async def get_generation(self, generation_id: str) -> dict[str, Any]:
        return dict(await self.retried("GET", f"/api/ai/queue/{quote(generation_id, safe='')}"))

    async def list_queue(
        self, *, model: str | None = None, status: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """The lean queue listing (active rows unless `status` is given). It documents no paging and
        no cap, so a caller must not rely on it being complete."""
        params = {k: v for k, v in (("model", model), ("status", status), ("namespace", namespace)) if v}
        return _rows(await self.retried("GET", "/api/ai/queue", params=params), "GET /api/ai/queue")

    async def history_since(
        self, *, model: str, namespace: str | None, since: float | None
    ) -> list[dict[str, Any]]:
        """Every row of `GET /api/ai/generations` (all statuses) enqueued at or after `since`, on the
        provider's clock (None: every row); how the pages are read is `history.read_since`'s."""
        base = {
            "model": model,
            "page_size": str(HISTORY_PAGE_SIZE),
            **({"namespace": namespace} if namespace else {}),
        }

        async def page(number: int) -> Page:
            answer = await self.retried("GET", "/api/ai/generations", params={**base, "page": str(number)})
            return page_of(answer, _rows(answer, "GET /api/ai/generations"))

        return await read_since(page, since)

    async def find_rows(self, scopes: Iterable[Scope], since: float | None) -> list[Mapping[str, Any]]:
        """Every row in these (namespace, model) scopes that may have been enqueued since `since` (on the
        provider's clock; None: whenever):
        active ones from the lean list, and all of them (terminal ones included) from the paginated
        history, merged by generation id."""
        listings: list[list[dict[str, Any]]] = []
        unreadable: HistoryUnreadable | None = None
        for scope in scopes:
            listings.append(await self.list_queue(model=scope.model, namespace=scope.namespace))
            try:
                listings.append(
                    await self.history_since(model=scope.model, namespace=scope.namespace, since=since)
                )
            except HistoryUnreadable as exc:  # raised below, with what was found: it may be enough
                unreadable = unreadable or exc
        if unreadable is not None:
            raise HistoryUnreadable(str(unreadable), merge_rows(*listings)) from unreadable
        return merge_rows(*listings)

    async def cancel(self, generation_id: str) -> None:
        await self.retried("DELETE", f"/api/ai/queue/{quote(generation_id, safe='')}")

    async def get_model(self, model_id: str) -> Any:
        """The registry's answer as parsed JSON, unchecked (`ModelSpec.from_api` judges it)."""
        answer = await self.retried("GET", f"/api/ai/models/{quote(model_id, safe='')}")
        if isinstance(answer, Mapping) and isinstance(answer.get("data"), Mapping):
            answer = answer["data"]
        return answer

    async def create_repo(
        self, namespace: str, repo: str, description: str, *, kind: str, public: bool
    ) -> None:
        """POST /api/repos, and the log says which: created (a warning), or there already (409).
        `public` is sent, never left to the hub's default: the model must fetch reference images
        without a key, and a team's deliveries are nobody else's."""
        body = {
            "namespace": namespace,
            "name": repo,
            "description": description,
            "user": AUTHOR,
            "is_public": public,
        }
        try:
            await self.retried("POST", "/api/repos", json_body=body)
        except ApiStatusError as exc:
            if exc.status != 409:
                raise
            log.info("%s repository %s/%s: already exists", kind, namespace, repo)
        else:
            log.warning("%s repository %s/%s: created", kind, namespace, repo)

    async def repo_exists(self, namespace: str, repo: str) -> bool:
        """GET /api/repos/{namespace}/{repo} (Oxen's repository API): False on 404."""
        return await self.retried_or_none("GET", repo_path(namespace, repo)) is not None

    @contextlib.asynccontextmanager
    async def open_events(self) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET /api/events with no total timeout (the caller runs an idle watchdog)."""
        await self.throttle.wait_clear()
        url = self.url("/api/events")
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeouts.connect_s, sock_read=None)
        self.requests_sent += 1
        with mapped_errors("GET", "/api/events"):
            resp = await self.session.get(
                url, headers={**self.auth_for(url), "Accept": "text/event-stream"}, timeout=timeout
            )
        try:
            if resp.status >= 400:
                self._raise_status(resp, "GET", "/api/events", _parse_json(await resp.text()))
            yield resp
        finally:
            resp.release()


def _rows(answer: Any, what: str) -> list[dict[str, Any]]:
    generations = field_of(answer, "generations")
    if not isinstance(generations, list) or not all(
        isinstance(g, Mapping) and "generation_id" in g for g in generations
    ):
        raise ApiStatusError(200, "GET", what.split(" ", 1)[1], "the listing has no list of generations")
    return [dict(g) for g in generations]


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return {"error": text[:300]}
    except RecursionError:  # JSON nested about a thousand levels deep
        return {"error": "the answer is JSON nested too deeply to read"}

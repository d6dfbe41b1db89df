"""The one at-most-once send, for every request that must not be carried out twice: an enqueue (it
costs money) and a commit (of delivered files, of reference images). Neither has an idempotency key, so:

1. the intent is journaled, durably, before the request leaves: a process killed after that leaves an
   intent to look for, never a request to send blindly again;
2. the request is sent once;
3. a lost answer (a cut, a timeout, a 5xx) may hide a request carried out: it is looked for at once
   and, if not found, again once it is settled, SETTLE_TIMEOUTS request timeouts after it was sent (a
   slow server, or one behind a gateway that answered 5xx, may still be carrying it out);
4. it is sent again only when both looks say it surely was not carried out; when the looking itself
   fails (`CannotTell`), the intent stays journaled and the next start looks for it;
5. at start, the intents a stopped process left are looked for the same way, all together.

The callers give the I/O (journal the intent, send, look) and say what each outcome means to them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from batchgen.config import RetryPolicy
from batchgen.errors import ApiError, RateLimited
from batchgen.retry import Action, attempts, decide

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
F = TypeVar("F")
R = TypeVar("R")
T = TypeVar("T")

SETTLE_TIMEOUTS = 2  # a request this many request timeouts old is carried out by now, or never will be


class CannotTell(Exception):
    """Whether a request was carried out cannot be found out now (the far side could not be asked):
    its intent stays journaled, for the next start to look for."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class Found(Generic[F]):
    """The answer was lost; the request was found carried out, as `value` (what the look gave)."""

    value: F


@dataclass(frozen=True, slots=True)
class NotSent:
    """Surely not carried out, and not sent again: refused or given up (`action`), or, after a look,
    no longer sendable as it is (`sendable` False)."""

    error: Exception
    action: Action
    sendable: bool = True


def _sent_again(error: Exception) -> bool | float:
    """`on` for the send loop, which is handed only what surely was not carried out: sent again after
    the backoff, a 429 at once (the client's shared pause holds it for its Retry-After)."""
    return isinstance(error, ApiError) and (0.0 if isinstance(error, RateLimited) else True)


class Outbox(Generic[K, F]):
    """Sends requests at most once, and finds out what became of the ones whose answer was lost.
    `look(keys)` asks the far side once which of those requests were carried out (key -> what was
    found); it may take what it finds at once."""

    def __init__(
        self,
        look: Callable[[list[K]], Awaitable[Mapping[K, F]]],
        *,
        request_s: float,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._look, self.request_s, self.policy, self._sleep = look, request_s, policy, sleep
        self._rng = rng or random.Random()
        self.looking: set[K] = set()  # keys being looked for, from before the first look to after the last

    async def send(
        self,
        key: K,
        intend: Callable[[], Awaitable[float | None]],
        send: Callable[[], Awaitable[R]],
        *,
        what: str,
        extra: Mapping[str, str] | None = None,
        not_sent: Callable[[ApiError], Awaitable[None]] | None = None,
        lost: tuple[type[ApiError], ...] = (),
        again: Callable[[], Awaitable[bool]] | None = None,
    ) -> R | Found[F] | NotSent | None:
        """Journal the intent (`intend`: the time it is sent, or None if it is not to be sent any
        more), send once, and after a lost answer look before sending again. The answer; `Found`;
        `NotSent`; or None (`intend` withdrew it). `not_sent` journals that a request surely was not
        carried out (a 429, a refused connection) before the wait; `lost`: the errors beside a lost
        answer after which it may have been; `again`: whether one looked for and not found can be
        sent again as it is. Raises CannotTell, and the error of a wrong key."""
        tries = attempts(
            self.policy,
            limit=self.policy.request_attempts,
            on=_sent_again,
            what=what,
            sleep=self._sleep,
            rng=self._rng,
            extra=extra,
        )
        async for attempt in tries:
            with attempt:
                if (sent_at := await intend()) is None:
                    return None
                try:
                    return await send()
                except ApiError as error:
                    action = decide(error, attempt=attempt.number, policy=self.policy, idempotent=False)
                    if action is Action.RETRY:
                        if not_sent is not None:
                            await not_sent(error)
                        raise  # sent again after the loop's wait
                    if action is not Action.LOOK_FIRST and not isinstance(error, lost):
                        return NotSent(error, action)
                    log.info(
                        "%s may or may not have been carried out (%s): looking", what, error, extra=extra
                    )
                    found, _ = await self.look_for({key: sent_at})
                    if key in found:
                        return Found(found[key])
                    if again is not None and not await self._asking(again()):
                        return NotSent(error, Action.GIVE_UP, sendable=False)
                    raise  # surely not carried out: sent again after the loop's wait
        return NotSent(tries.error, Action.GIVE_UP)

    async def look_for(self, sent: Mapping[K, float]) -> tuple[dict[K, F], list[K]]:
        """What became of requests sent at these times (a lost answer; an intent a stopped process
        left): looked for at once and, the ones not found, again once they are settled. What was
        found, and the keys surely not carried out. Raises CannotTell."""
        found: dict[K, F] = {}
        missing = list(sent)
        self.looking.update(missing)  # before any await: a look under way keeps what these may be
        try:
            for look in range(2):
                if not missing:
                    break
                if look:  # on our clock: how long ago we sent it is ours to measure
                    settled = max(sent[key] for key in missing) + SETTLE_TIMEOUTS * self.request_s
                    await self._sleep(max(0.0, settled - time.time()))
                found.update(await self._asking(self._look(missing)))
                missing = [key for key in missing if key not in found]
        finally:
            self.looking.difference_update(sent)
        return found, missing

    async def _asking(self, question: Awaitable[T]) -> T:
        """The answer to a question about what became of requests; one that cannot be asked is
        CannotTell (a wrong key is not: nothing can go on)."""
        try:
            return await question
        except ApiError as exc:
            raise CannotTell(exc) from exc

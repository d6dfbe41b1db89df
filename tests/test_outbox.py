"""The at-most-once outbox's ordering, with scripted I/O: the intent is journaled before every send; a
lost answer is looked for, the wait runs until the request is settled, and it is looked for again; it
is sent again only when surely absent; a look that cannot be made leaves the intent for the next start."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from batchgen.config import RetryPolicy
from batchgen.errors import (
    ApiError,
    ApiStatusError,
    ConnectFailed,
    NotFound,
    RateLimited,
    ResponseLost,
    TransportError,
    Unauthenticated,
)
from batchgen.journal.outbox import SETTLE_TIMEOUTS, CannotTell, Found, NotSent, Outbox
from batchgen.retry import Action

REQUEST_S = 10.0
POLICY = RetryPolicy(request_attempts=3, initial_s=1.0, max_s=8.0, jitter=0.0)


@dataclass
class Far:
    """A far side and a journal, scripted: what each send and each look answers, and every step taken."""

    sends: list[str | Exception]  # what each send answers (an error is raised)
    looks: list[Mapping[str, str] | Exception] = field(default_factory=list)  # what each look finds
    sent_ago_s: float = 1.0  # the intent journals a send time this long before now
    steps: list[str] = field(default_factory=list)
    looked_while: list[set[str]] = field(default_factory=list)  # `outbox.looking` at each look
    outbox: Outbox[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.look, request_s=REQUEST_S, policy=POLICY, sleep=self.sleep)

    async def intend(self) -> float:
        self.steps.append("intend")
        return time.time() - self.sent_ago_s

    async def send(self) -> str:
        self.steps.append("send")
        answer = self.sends.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def look(self, keys: list[str]) -> Mapping[str, str]:
        self.steps.append(f"look {','.join(keys)}")
        self.looked_while.append(set(self.outbox.looking))
        found = self.looks.pop(0)
        if isinstance(found, Exception):
            raise found
        return found

    async def not_sent(self, error: ApiError) -> None:
        self.steps.append("not sent")

    async def sleep(self, seconds: float) -> None:
        self.steps.append(f"sleep {round(seconds)}")

    async def run(self) -> object:
        return await self.outbox.send(
            "k", self.intend, self.send, what="a test request", not_sent=self.not_sent
        )


SETTLE = round(SETTLE_TIMEOUTS * REQUEST_S - 1.0)  # the wait from a send 1 s ago until it is settled


async def test_the_intent_is_journaled_before_the_one_send_and_an_answer_is_returned_as_is() -> None:
    """An answered request: intend, then send, once each; nothing looked for, nothing waited."""
    far = Far(sends=["answer"])
    assert await far.run() == "answer"
    assert far.steps == ["intend", "send"]


async def test_a_lost_answer_is_looked_for_then_again_once_settled_and_found_is_never_sent_again() -> None:
    """A cut answer: look at once (nothing), wait until two request timeouts after the send, look
    again (there): found, and sent once only."""
    far = Far(sends=[ResponseLost("cut")], looks=[{}, {"k": "c-1"}])
    assert await far.run() == Found("c-1")
    assert far.steps == ["intend", "send", "look k", f"sleep {SETTLE}", "look k"]
    assert far.looked_while == [{"k"}, {"k"}] and far.outbox.looking == set()


async def test_a_request_already_settled_is_looked_for_again_without_waiting() -> None:
    """Sent longer ago than the settle time: the second look follows at once."""
    far = Far(
        sends=[ResponseLost("cut")], looks=[{}, {"k": "c-1"}], sent_ago_s=SETTLE_TIMEOUTS * REQUEST_S + 5
    )
    assert await far.run() == Found("c-1")
    assert far.steps == ["intend", "send", "look k", "sleep 0", "look k"]


async def test_it_is_sent_again_only_when_both_looks_say_it_is_surely_absent() -> None:
    """A 5xx: looked for twice, absent; then (after the backoff) the intent journaled again and sent
    again, and that answer is returned."""
    far = Far(sends=[ApiStatusError(503, "POST", "/q", "busy"), "answer"], looks=[{}, {}])
    assert await far.run() == "answer"
    assert far.steps == [
        "intend",
        "send",
        "look k",
        f"sleep {SETTLE}",
        "look k",
        "sleep 1",  # backoff before the second try
        "intend",
        "send",
    ]


async def test_a_look_that_cannot_be_made_leaves_the_intent_journaled_for_the_next_start() -> None:
    """The second look fails: CannotTell (with the look's error), never a second send, and the intent
    is not withdrawn (no `not sent`)."""
    failure = TransportError("history down")
    far = Far(sends=[ResponseLost("cut"), "never"], looks=[{}, failure])
    with pytest.raises(CannotTell) as raised:
        await far.run()
    assert raised.value.error is failure
    assert far.steps == ["intend", "send", "look k", f"sleep {SETTLE}", "look k"]
    assert far.outbox.looking == set()


async def test_a_wrong_key_at_the_send_goes_through_at_once() -> None:
    """A 401 from the send is raised as itself: not looked for, not journaled `not sent`, not sent again."""
    far = Far(sends=[Unauthenticated(401, "POST", "/q", "who"), "never"])
    with pytest.raises(Unauthenticated):
        await far.run()
    assert far.steps == ["intend", "send"]


async def test_a_wrong_key_while_looking_is_not_cannot_tell() -> None:
    """A 401 from a look goes through as itself: nothing can go on."""
    far = Far(sends=[ResponseLost("cut")], looks=[Unauthenticated(401, "GET", "/q", "who")])
    with pytest.raises(Unauthenticated):
        await far.run()


async def test_surely_not_sent_is_journaled_and_sent_again_without_looking() -> None:
    """A 429 (answered before anything was done) and a refused connection: `not sent` journaled, then
    intend and send again; never a look. The 429 waits 0 s here (the client's shared pause holds it)."""
    far = Far(sends=[RateLimited("POST", "/q", "slow down", 3.0), ConnectFailed("refused"), "answer"])
    assert await far.run() == "answer"
    assert far.steps == [
        "intend",
        "send",
        "not sent",
        "sleep 0",
        "intend",
        "send",
        "not sent",
        "sleep 1",
        "intend",
        "send",
    ]


async def test_a_refusal_is_not_sent_again_and_not_looked_for() -> None:
    """A 400 is an answer: NotSent(REJECT_JOB), one send, no look."""
    refusal = ApiStatusError(400, "POST", "/q", "bad")
    far = Far(sends=[refusal])
    assert await far.run() == NotSent(refusal, Action.REJECT_JOB)
    assert far.steps == ["intend", "send"]


async def test_attempts_used_up_while_absent_end_in_not_sent() -> None:
    """Lost, looked for and absent on every try: after `request_attempts` sends, NotSent(GIVE_UP)."""
    lost = ResponseLost("cut")
    far = Far(sends=[lost] * POLICY.request_attempts, looks=[{}, {}] * POLICY.request_attempts)
    assert await far.run() == NotSent(lost, Action.GIVE_UP)
    assert far.steps.count("send") == POLICY.request_attempts


async def test_one_that_cannot_be_sent_again_as_it_is_ends_after_the_looks() -> None:
    """`again` says no (a commit's workspace is gone): NotSent, not sendable, and no second send."""
    lost = ResponseLost("cut")
    far = Far(sends=[lost, "never"], looks=[{}, {}])

    async def gone() -> bool:
        far.steps.append("again?")
        return False

    outcome = await far.outbox.send("k", far.intend, far.send, what="a commit", again=gone)
    assert outcome == NotSent(lost, Action.GIVE_UP, sendable=False)
    assert far.steps == ["intend", "send", "look k", f"sleep {SETTLE}", "look k", "again?"]


async def test_withdrawn_before_sending_is_never_sent() -> None:
    """`intend` says it is not to be sent (a cancel came first): None, and nothing sent."""
    far = Far(sends=["never"])

    async def withdrawn() -> None:
        return None

    assert await far.outbox.send("k", withdrawn, far.send, what="x") is None
    assert far.sends == ["never"]


async def test_leftovers_are_looked_for_together_and_settled_by_the_latest_still_missing() -> None:
    """At start: every leftover in one look; the ones not found looked for again once the latest of
    them is settled; what was found, and the ones surely never carried out."""
    far = Far(sends=[], looks=[{"a": "c-a"}, {"b": "c-b"}])
    now = time.time()
    sent = {"a": now - 1.0, "b": now - 4.0, "c": now - 3.0}  # a (the latest) is found at once
    found, absent = await far.outbox.look_for(sent)
    assert (found, absent) == ({"a": "c-a", "b": "c-b"}, ["c"])
    assert far.steps == ["look a,b,c", f"sleep {round(SETTLE_TIMEOUTS * REQUEST_S - 3.0)}", "look b,c"]
    assert far.looked_while == [{"a", "b", "c"}, {"a", "b", "c"}] and far.outbox.looking == set()


async def test_no_leftovers_means_no_look() -> None:
    """Nothing left `sending`: the far side is not asked."""
    far = Far(sends=[])
    assert await far.outbox.look_for({}) == ({}, [])
    assert far.steps == []


async def test_errors_the_caller_names_as_lost_are_looked_for_not_taken_as_a_refusal() -> None:
    """A commit answered 404 (its workspace gone: the commit may have consumed it) is looked for when
    the caller names NotFound as lost; without that it is a refusal."""
    gone = NotFound(404, "POST", "/commit", "workspace not found")
    far = Far(sends=[gone], looks=[{"k": "c-1"}])
    assert await far.outbox.send("k", far.intend, far.send, what="a commit", lost=(NotFound,)) == Found("c-1")
    assert far.steps == ["intend", "send", "look k"]
    refused = Far(sends=[gone])
    assert await refused.run() == NotSent(gone, Action.REJECT_JOB)

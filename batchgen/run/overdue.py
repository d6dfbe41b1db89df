"""When to look for completions the event stream may have missed (pure: no I/O, time passed in).

The event stream is the fast path; a "safety look" (listing what is in flight) is the insurance. Done
too often it doubles the requests a generation costs, too rarely a lost event stalls the run. So it
is timed from the renders this run has seen, and from how far the stream has earned trust:

- The caller's own namespace is trusted from the start: the docs promise its events. A namespace
  billed through `target_namespace` (an organisation) is trusted once one of its events arrives; the
  docs leave open whether they reach the user's stream at all.
- A trusted generation is overdue after max(expected render, 2 x the longest render seen).
- An untrusted one, or any once the stream has been caught missing an event of ours, is overdue
  after 1.5 x the longest render seen (or a tenth of the expected render before any is seen).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

TRUSTED_FACTOR = 2.0
UNTRUSTED_FACTOR = 1.5
UNTRUSTED_FIRST_LOOK = 0.1  # share of the expected render time before the first look
MIN_LOOK_GAP_SHARE = 0.01  # never look more often than this share of the expected render time


@dataclass(frozen=True, slots=True)
class Waiting:
    """A generation in flight: when it was submitted, and the namespace it bills to (None: own)."""

    submitted_at: float
    namespace: str | None


@dataclass(slots=True)
class RenderWatch:
    """What this run knows about render times and the stream's reliability."""

    expected_render_s: float
    longest_render_s: float | None = None
    missed_events: int = 0
    trusted: set[str | None] = field(default_factory=lambda: {None})
    last_look_at: float = float("-inf")

    def observe_render(self, seconds: float) -> None:
        if seconds >= 0:
            self.longest_render_s = max(self.longest_render_s or 0.0, seconds)

    def event_arrived(self, namespace: str | None) -> None:
        """An event of ours came through the stream: its namespace's events do reach us."""
        self.trusted.add(namespace)

    def event_missed(self) -> None:
        """A look found a completion of ours the connected stream never announced."""
        self.missed_events += 1

    def looked(self, now: float) -> None:
        self.last_look_at = now

    def overdue_after(self, namespace: str | None) -> float:
        """Seconds after submission (or the last look) at which a generation counts as overdue."""
        longest = self.longest_render_s
        if namespace in self.trusted and not self.missed_events:
            return max(self.expected_render_s, TRUSTED_FACTOR * (longest or 0.0))
        if longest is None:
            return self.expected_render_s * UNTRUSTED_FIRST_LOOK
        return max(self.expected_render_s * MIN_LOOK_GAP_SHARE, UNTRUSTED_FACTOR * longest)

    def next_look_at(self, waiting: Iterable[Waiting]) -> float | None:
        """When the next safety look is due (None: nothing in flight)."""
        due = [max(w.submitted_at, self.last_look_at) + self.overdue_after(w.namespace) for w in waiting]
        if not due:
            return None
        return max(min(due), self.last_look_at + self.expected_render_s * MIN_LOOK_GAP_SHARE)

"""Stopping `batchgen run` with signals, as people and process managers send them.

The first SIGINT (Ctrl-C) or SIGTERM (systemd, cron wrappers, `docker stop`, Kubernetes) starts the
drain: nothing new is submitted, what is in flight is tracked and downloaded, for up to the drain
timeout. Another one within `SAME_PRESS_S` of the first is the same press: coreutils `timeout -s INT`,
or a Ctrl-C that reaches both a wrapper script and batchgen in one process group, delivers two a few
milliseconds apart, and that must not turn a drain into a hard stop. A later one stops at once (exit
130): the journal is already up to date, so a rerun resumes; so does one after `kill -9`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from enum import StrEnum

__all__ = ["SAME_PRESS_S", "Press", "Presses", "stop_signals"]

log = logging.getLogger(__name__)

#: A stop signal this soon after the first is the same press, not a second one.
SAME_PRESS_S = 0.5

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Press(StrEnum):
    DRAIN = "drain"  # the first: stop submitting, finish what is in flight
    SAME = "same"  # within SAME_PRESS_S of the first: ignored
    STOP = "stop"  # a later one: stop at once


class Presses:
    """What each stop signal means, from when the first one came (pure: the time is passed in)."""

    first: float | None = None  # when the first one came

    def press(self, now: float) -> Press:
        if self.first is None:
            self.first = now
            return Press.DRAIN
        return Press.SAME if now - self.first < SAME_PRESS_S else Press.STOP


@contextlib.contextmanager
def stop_signals(stop: asyncio.Event, drain_timeout_s: float) -> Iterator[None]:
    """For the length of the block: the first SIGINT or SIGTERM sets `stop` (the drain), a repeat within
    SAME_PRESS_S is ignored, a later one cancels the current task (raised as KeyboardInterrupt)."""
    presses = Presses()
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        verdict = presses.press(loop.time())
        if verdict is Press.DRAIN:
            print(
                f"\nbatchgen: {sig.name}: stopping: no new submissions; waiting up to "
                f"{drain_timeout_s:g} s for in-flight generations to finish and download "
                "(Ctrl-C again to exit now; rerun to resume)",
                file=sys.stderr,
            )
            stop.set()
        elif verdict is Press.SAME:
            assert presses.first is not None
            log.debug(
                "%s %.0f ms after the first: the same press", sig.name, 1000 * (loop.time() - presses.first)
            )
        elif main_task is not None:
            main_task.cancel()

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)

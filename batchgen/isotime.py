"""Epoch seconds as ISO-8601 UTC text, for files people read (results, sidecars, run.log, the report)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_utc"]


def iso_utc(epoch: float | None, *, ms: bool = False) -> str | None:
    """`1775091431.5` -> `"2026-04-02T00:57:11Z"` (`ms`: `"...11.500Z"`); None stays None."""
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds" if ms else "seconds").replace("+00:00", "Z")

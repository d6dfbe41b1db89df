"""`deliver_run`: a run's results to an Oxen repository, from the run directory alone, only what is
missing (the target the run recorded, or another)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen import aio
from batchgen.commands.common import recorded_target
from batchgen.config import RunOptions, Timeouts
from batchgen.errors import UsageError
from batchgen.rundir.layout import read_plan_json

if TYPE_CHECKING:
    from batchgen.journal.session import Session
    from batchgen.sinks.oxen.run import DeliverySummary
    from batchgen.target import DeliveryTarget

__all__ = ["deliver_run"]


def deliver_run(
    run_dir: str | os.PathLike[str],
    *,
    to: str | None = None,
    create: bool = False,
    api_base: str | None = None,
    api_key: str | None = None,
    request_timeout_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    picks: str | os.PathLike[str] | None = None,
    only: Sequence[str] | None = None,
    for_: str | None = None,
) -> DeliverySummary | None:
    """Deliver a run's results to its `deliver:` repository (or `to`: "NS/NAME[@BRANCH][:PATH]"), from
    the run directory alone: only what is missing. `progress(delivered, wanted)` after every change.
    `picks` (a picks file), `only` (KEY=VALUE terms) narrow the results; `for_="client"` sends the
    client-safe files (`batchgen.sinks.oxen.selected`)."""
    from batchgen.client.endpoint import credentials

    chosen = {"picks": None if picks is None else Path(picks), "only": only, "audience": for_}
    return aio.run(
        _deliver(
            Path(run_dir), to, create, credentials(api_base, api_key), request_timeout_s, progress, chosen
        )
    )


async def _deliver(
    path: Path,
    to: str | None,
    create: bool,
    api: tuple[str, str],
    request_timeout_s: float | None,
    progress: Callable[[int, int], None] | None,
    chosen: dict[str, Any],
) -> DeliverySummary | None:
    import asyncio

    from batchgen.client.api import OxenClient
    from batchgen.commands.choose import choose
    from batchgen.journal.session import Session
    from batchgen.sinks.base import run_with_sinks
    from batchgen.sinks.oxen.selected import delivery_for

    api_base, key = api
    timeouts = Timeouts() if request_timeout_s is None else Timeouts(request_s=request_timeout_s)
    with Session.writing(path) as session:
        session.refuse_sandbox(
            "its results are placeholders, never delivered to a real repository (its deliveries went to "
            "the sandbox's emulator)"
        )
        target, campaign = _target(session, to, create)
        recorded = recorded_target(session)
        choice = choose(session, read_plan_json(path), recorded=recorded, **chosen)
        options = RunOptions(api_base=api_base, deliver=target, timeouts=timeouts)
        async with OxenClient(api_base, key, timeouts=timeouts) as client:
            await session.check_api(options.api_identity, client)
        show = (lambda counts: None) if progress is None else (lambda counts: progress(*counts))
        delivery = delivery_for(
            target, options, key, session.journal, path, campaign, choice, linger_s=0.0, on_change=show
        )
        await run_with_sinks([delivery], lambda: asyncio.sleep(0))  # no run: what is missing, then finish
        return delivery.summary()


def _target(session: Session, to: str | None, create: bool) -> tuple[DeliveryTarget, str]:
    """The target and the campaign's name: `to`, else what the run recorded."""
    from batchgen.target import DeliveryTarget, parse_repo

    recorded = recorded_target(session)
    name = recorded.get("name")
    with contextlib.suppress(OSError, ValueError, AttributeError):
        name = name or read_plan_json(session.run_dir).get("name")
    campaign = str(name if name and isinstance(name, str) else session.run_dir.name)
    pass_to = ("pass to='NAMESPACE/NAME[@BRANCH][:PATH]'", "pass --to NAMESPACE/NAME[@BRANCH][:PATH]")
    try:
        if to:
            return DeliveryTarget.parse(to, {"name": campaign}, create=create), campaign
        if "repo" not in recorded:
            why = f"{session.run_dir} has no delivery target (its manifest has no `deliver:`): "
            raise UsageError(why + pass_to[0], cli=why + pass_to[1])
        namespace, repo = parse_repo(str(recorded["repo"]))
    except ValueError as exc:
        if to:
            raise UsageError(f"to: {exc}", cli=f"--to: {exc}") from None
        why = f"the delivery target {session.run_dir} recorded is not usable ({exc}): "
        raise UsageError(why + pass_to[0], cli=why + pass_to[1]) from None
    branch, where = str(recorded["branch"]), str(recorded["path"])
    create = create or recorded.get("create") is True
    return DeliveryTarget(namespace=namespace, repo=repo, branch=branch, path=where, create=create), campaign

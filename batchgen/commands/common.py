"""What the commands share: the run directory's plan.json, the jobs `only` chooses in it, and the delivery
target the run recorded."""

from __future__ import annotations

import functools
import json
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from batchgen.errors import UsageError
from batchgen.rundir.layout import read_plan_json

if TYPE_CHECKING:
    from batchgen.journal.session import Session

log = logging.getLogger("batchgen")

F = TypeVar("F", bound=Callable[..., Any])


def says(function: F) -> F:
    """A command whose human notes go to `say=`: `notify=`, their old name (the word now names a
    manifest's `notify:` targets), still works, with a DeprecationWarning."""

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> Any:
        if "notify" in kwargs:
            warnings.warn(f"{function.__name__}'s notify= is now say=", DeprecationWarning, stacklevel=2)
            kwargs.setdefault("say", kwargs.pop("notify"))
        return function(*args, **kwargs)

    return cast(F, command)


def note(text: str) -> None:
    """Where notes go when the caller gives no `say`: the `batchgen` logger, at WARNING."""
    log.warning("%s", text)


def chosen_keys(
    run_dir: Path,
    only: Sequence[str] | None,
    *,
    required: bool = False,
    say: Callable[[str], None] = note,
) -> set[str] | None:
    """The keys of the run's planned jobs (its plan.json) that `only` (["KEY=VALUE", ...]) chooses; None
    without it. Choosing none goes to `say`, or is a UsageError when `required`."""
    from batchgen.planning.select import Selection, json_job_facts, nothing_matched, selected_keys

    selection = Selection.parse(only)
    if selection is None:
        return None
    try:
        jobs = [json_job_facts(job) for job in read_plan_json(run_dir)["jobs"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = f"{run_dir / 'plan.json'} cannot be read ({exc})"
        raise UsageError(f"cannot choose jobs: {why}", cli=f"cannot use --only: {why}") from None
    keys = set(selected_keys(selection, jobs))
    if not keys:
        message = nothing_matched(selection, jobs, len(jobs))
        if required:
            raise UsageError(message)
        say(message)
    return keys


def recorded_target(session: Session) -> dict[str, object]:
    """The delivery target the run recorded in its journal (empty when none, or unreadable)."""
    from batchgen.sinks.oxen.run import META_KEY

    try:
        value = json.loads(session.journal.meta(META_KEY) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) and {"repo", "branch", "path"} <= value.keys() else {}

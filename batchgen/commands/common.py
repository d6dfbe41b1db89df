"""What the commands share: where the API and its key come from, the run directory's plan.json, and the
jobs `only` chooses in it."""

from __future__ import annotations

import functools
import json
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from batchgen.config import DEFAULT_API_BASE
from batchgen.errors import UsageError

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


def api_of(api_base: str | None, api_key: str | None) -> tuple[str, str]:
    """The API origin and key: the ones given, else $OXEN_API_BASE and $OXEN_API_KEY."""
    key = api_key or os.environ.get("OXEN_API_KEY", "")
    if not key:
        raise UsageError(
            "no API key: pass api_key or set OXEN_API_KEY",
            cli="no API key: set OXEN_API_KEY (or pass --api-key), or try --sandbox",
        )
    return api_base or os.environ.get("OXEN_API_BASE") or DEFAULT_API_BASE, key


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
        jobs = [json_job_facts(job) for job in plan_json(run_dir)["jobs"]]
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


def plan_json(run_dir: Path) -> Any:
    return json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))


def existing_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """`run_dir` as a Path, when it holds a journal; a UsageError saying why not, otherwise (checked
    before anything is written into it: a plain folder is never littered)."""
    from batchgen.journal.schema import journal_problem

    path = Path(run_dir)
    problem = journal_problem(path)
    if problem is not None:
        raise UsageError(problem)
    return path

"""`settle_unverified`: the paid results whose bytes failed verification, as they are, accepted, or to be
downloaded again (`results.unverified` does the work, under the run directory's lock)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from batchgen.commands.common import chosen_keys, existing_run_dir, note

if TYPE_CHECKING:
    from batchgen.results.unverified import Unverified

__all__ = ["settle_unverified"]


def settle_unverified(
    run_dir: str | os.PathLike[str],
    *,
    only: Sequence[str] | None = None,
    accept: bool = False,
    fetch_again: bool = False,
    notify: Callable[[str], None] = note,
) -> list[Unverified]:
    """The unverified results (those `only` chooses): as they are, or accepted as the results (`accept`),
    or to be downloaded again by the next run (`fetch_again`; both refused while a run is live)."""
    from batchgen.results.unverified import settle

    path = existing_run_dir(run_dir)
    chosen = chosen_keys(path, only, required=accept or fetch_again, notify=notify)
    return settle(path, chosen, accept_them=accept, again=fetch_again)

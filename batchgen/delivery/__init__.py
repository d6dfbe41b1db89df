"""Delivering a run's results into an Oxen repository, versioned, as they finish.

    target.py    where: `deliver:` / `--deliver NS/NAME[@BRANCH][:PATH]`, the path template (pure)
    batching.py  what goes in one request: files per directory, limits, commit messages (pure)
    ledger.py    the journal's `deliveries` table: per file, its sha256, state and commit
    repo_api.py  the documented repository endpoints (check, history, upload, file) over OxenClient
    sender.py    the loop that sends batches, each journaled `sending` before its PUT, and resolves
                 an unanswered one by looking at the branch, never by sending it blindly again
    wanted.py    what a run directory should have delivered: done results, sidecars, run files
    run.py       RunDelivery and its ResultSink: the check before paid work, the sweep, the summary

Nothing is imported here, so `batchgen.delivery.target` stays light for the manifest checks.
"""

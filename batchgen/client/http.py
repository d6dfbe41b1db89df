"""One rule for every aiohttp session of batchgen: no request is sent twice behind the journal's back."""

from __future__ import annotations

import aiohttp


def without_silent_resends(session: aiohttp.ClientSession) -> aiohttp.ClientSession:
    """Turn off aiohttp's own second try of an idempotent request (GET, PUT, DELETE...) whose connection
    dropped before the answer (`ClientSession._retry_connection`, on by default and with no public
    switch in aiohttp 3.14; its own test client turns it off the same way). A cut PUT to a repository
    would otherwise commit twice; what to do after a lost answer is `retry.decide`'s call."""
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session

"""JSON shapes of rows and events, exactly as the contract documents them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from batchgen.emulator.model import Generation
from batchgen.emulator.pricing import money_text

NOT_ECHOED = ("model", "num_generations")


def _seconds(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp)


def queue_row(
    gen: Generation, result_url: str | None, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """QueueGenerationResponse: the documented fields plus every other request param at top level.

    ``defaults`` (schema defaults of parameters the request left out) are echoed too when given.
    """
    row = {key: value for key, value in (defaults or {}).items() if key not in gen.request}
    row.update((key, value) for key, value in gen.request.items() if key not in NOT_ECHOED)
    row.update(
        generation_id=gen.generation_id,
        model_name=gen.model_id,
        prompt=gen.request.get("prompt"),
        media_type=gen.media_type,
        status=gen.status,
        result_url=result_url,
        error_message=gen.error_message,
        enqueued_at=_seconds(gen.enqueued_at),
        started_at=_seconds(gen.started_at),
        completed_at=_seconds(gen.completed_at),
    )
    return row


def user_id(username: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://hub.oxen.ai/{username}"))


def history_row(
    gen: Generation, result_url: str | None, username: str, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``/api/ai/generations`` row: the queue row plus cost, target and user fields."""
    row = queue_row(gen, result_url, defaults)
    row.update(
        cost=None if gen.cost is None else money_text(gen.cost),
        target_namespace=gen.namespace,
        target_repo=gen.repo,
        target_directory=gen.directory,
        user_id=user_id(username),
        user_image=None,
        username=username,
    )
    return row


def completion_payload(gen: Generation, url: str | None) -> dict[str, Any]:
    """The ``media_generation_completed`` data: succeeded carries model+url, failed carries error."""
    payload: dict[str, Any] = {
        "generation_id": gen.generation_id,
        "status": gen.status,
        "media_type": gen.media_type,
    }
    if gen.status == "succeeded":
        payload.update(model=gen.model_id, url=url)
    else:
        payload["error"] = gen.error_message
    return payload

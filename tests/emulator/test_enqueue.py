"""POST /api/ai/queue: the documented response and the enqueue-time checks."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .support import CHAT, FLUX, KLING, Api, image, video

INVALID_COUNT = {
    "error": {
        "type": "invalid_params",
        "title": "Invalid parameters supplied, please check your request and try again.",
        "detail": "num_generations must be an integer between 1 and 4",
    },
    "status": "error",
    "status_message": "invalid_params",
}


@pytest.mark.parametrize("count", [1, 2, 3, 4])
async def test_enqueue_returns_one_queued_uuid4_per_generation(api: Api, count: int) -> None:
    """200 {"generations": [...]}: one {generation_id (uuid4), status "queued"} per num_generations."""
    status, payload = await api.request("POST", "/api/ai/queue", json=video(num_generations=count))
    assert status == 200
    assert list(payload) == ["generations"]
    assert len(payload["generations"]) == count
    for entry in payload["generations"]:
        assert entry.keys() == {"generation_id", "status"}
        assert entry["status"] == "queued"
        assert uuid.UUID(entry["generation_id"]).version == 4
    assert len({e["generation_id"] for e in payload["generations"]}) == count


async def test_num_generations_defaults_to_one(api: Api) -> None:
    """Without num_generations (or with null) exactly one generation is created."""
    assert len(await api.enqueue(video())) == 1
    assert len(await api.enqueue(video(num_generations=None))) == 1
    assert api.emu.counters.generations_enqueued == 2


@pytest.mark.parametrize("count", [0, 5, -1, "2", 2.0, True, [1]])
async def test_num_generations_out_of_range_is_400(api: Api, count: Any) -> None:
    """num_generations outside 1-4 (or not an integer) is 400 with the documented message."""
    status, payload = await api.request("POST", "/api/ai/queue", json=video(num_generations=count))
    assert (status, payload) == (400, INVALID_COUNT)
    assert api.emu.counters.generations_enqueued == 0


async def test_unknown_model_is_404_model_not_found(api: Api) -> None:
    """An unknown model is 404 with the message-style error body."""
    status, payload = await api.request(
        "POST", "/api/ai/queue", json={"model": "bad-model-name", "prompt": "x"}
    )
    assert (status, payload) == (404, {"error": {"message": "Model not found: bad-model-name"}})


async def test_text_only_model_is_rejected(api: Api) -> None:
    """A text-only model is refused with ':unsupported_media_type'."""
    status, payload = await api.request("POST", "/api/ai/queue", json={"model": CHAT, "prompt": "hi"})
    assert (status, payload) == (400, {"error": {"message": ":unsupported_media_type"}})


@pytest.mark.parametrize("body", [{}, {"prompt": "x"}, {"model": ""}, {"model": 7}])
async def test_missing_model_is_invalid_params(api: Api, body: dict[str, Any]) -> None:
    """A body without a usable model is 400 invalid_params."""
    status, payload = await api.request("POST", "/api/ai/queue", json=body)
    assert status == 400
    assert payload["error"]["type"] == "invalid_params"
    assert payload["error"]["detail"] == "model is required"


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b""])
async def test_body_must_be_a_json_object(api: Api, raw: bytes) -> None:
    """A body that is not a JSON object is 400 invalid_params."""
    status, payload = await api.request(
        "POST", "/api/ai/queue", data=raw, headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert payload["status_message"] == "invalid_params"


async def test_model_rules_are_not_checked_at_enqueue(api: Api) -> None:
    """Invalid model parameters are accepted at enqueue (they fail when the generation runs)."""
    ids = await api.enqueue({"model": KLING, "duration": 99, "aspect_ratio": "7:3"})
    assert len(ids) == 1


async def test_target_namespace_must_be_a_string(api: Api) -> None:
    """A non-string target_namespace is 400 invalid_params."""
    status, payload = await api.request("POST", "/api/ai/queue", json=image(target_namespace=12))
    assert status == 400
    assert payload["error"]["detail"] == "target_namespace must be a non-empty string"


async def test_image_model_is_accepted(api: Api) -> None:
    """Image models go through the same queue."""
    assert len(await api.enqueue({"model": FLUX, "prompt": "x", "num_generations": 4})) == 4


async def test_generation_ids_are_reproducible_per_seed(make_api: Any) -> None:
    """Two emulators with the same seed hand out the same generation ids."""
    first, second = await make_api(seed=7), await make_api(seed=7)
    assert await first.enqueue(video(num_generations=3)) == await second.enqueue(video(num_generations=3))


async def test_body_needs_a_json_content_type(api: Api) -> None:
    """A JSON body sent as form data (curl -d without -H) is not parsed: 400 invalid_params."""
    status, payload = await api.request(
        "POST",
        "/api/ai/queue",
        data=b'{"model": "flux-2-pro", "prompt": "x"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 400
    assert "Content-Type: application/json" in payload["error"]["detail"]

"""GET /api/ai/models, /search and /{id}: the registry the emulator ships."""

from __future__ import annotations

import pytest

from .support import CHAT, FLUX, KLEIN, KLING, OMNI, T2V, Api

MODEL_FIELDS = {
    "id",
    "object",
    "created",
    "owned_by",
    "display_name",
    "description",
    "summary",
    "model_type",
    "endpoint",
    "capabilities",
    "pricing",
    "fine_tuning",
    "deployments",
    "developer",
    "source_model",
    "image_url",
    "released_at",
    "request_schema",
    "json_request_schema",
}
O3_PROPERTIES = [
    "start_image_url",
    "tail_image_url",
    "input_image",
    "elements",
    "negative_prompt",
    "aspect_ratio",
    "generate_audio",
]


async def test_list_is_openai_style(api: Api) -> None:
    """{"object": "list", "data": [model, ...]} with every shipped model and the full model object."""
    status, payload = await api.request("GET", "/api/ai/models")
    assert status == 200
    assert payload["object"] == "list"
    ids = [model["id"] for model in payload["data"]]
    assert {KLING, OMNI, T2V, FLUX, KLEIN, CHAT} <= set(ids)
    for model in payload["data"]:
        assert model.keys() == MODEL_FIELDS
        assert model["object"] == "model"
        assert model["request_schema"] == model["json_request_schema"]


async def test_o3_reference_model_object(api: Api) -> None:
    """The O3 pro reference model: the seven documented schema properties, basic, x-order, pricing."""
    status, model = await api.request("GET", f"/api/ai/models/{KLING}")
    assert status == 200
    assert model["id"] == KLING
    assert model["pricing"] == {"method": "per_video_output_second", "cost_per_second": 0.224}
    schema = model["request_schema"]
    assert model["json_request_schema"] == schema
    assert list(schema["properties"]) == O3_PROPERTIES
    assert schema["basic"] == ["start_image_url", "tail_image_url", "input_image"]
    assert "required" not in schema
    assert [schema["properties"][name]["x-order"] for name in O3_PROPERTIES] == list(range(7))
    assert schema["properties"]["aspect_ratio"]["enum"] == ["9:16", "1:1", "16:9"]
    assert schema["properties"]["aspect_ratio"]["default"] == "16:9"
    assert schema["properties"]["generate_audio"]["default"] is False
    assert schema["properties"]["start_image_url"]["format"] == "uri"
    assert model["capabilities"]["output"] == ["video"]
    for absent in ("prompt", "multi_prompt", "duration"):
        assert absent not in schema["properties"]


async def test_omni_model_schema(api: Api) -> None:
    """kling-video-o3-omni requires prompt and carries the documented options and defaults."""
    _, model = await api.request("GET", f"/api/ai/models/{OMNI}")
    schema = model["request_schema"]
    assert schema["required"] == ["prompt"]
    props = schema["properties"]
    assert props["video_mode"]["enum"] == ["edit", "reference"] and props["video_mode"]["default"] == "edit"
    assert (
        props["resolution"]["enum"] == ["720p", "1080p", "4k"] and props["resolution"]["default"] == "1080p"
    )
    assert (props["duration"]["minimum"], props["duration"]["maximum"], props["duration"]["default"]) == (
        3,
        15,
        5,
    )
    assert props["keep_audio"]["default"] is True


@pytest.mark.parametrize(
    ("model_id", "method"),
    [(FLUX, "per_image"), (KLEIN, "per_image"), (T2V, "per_video_output_second"), (CHAT, "token")],
)
async def test_pricing_methods(api: Api, model_id: str, method: str) -> None:
    """Each model's pricing object names its method."""
    _, model = await api.request("GET", f"/api/ai/models/{model_id}")
    assert model["pricing"]["method"] == method


async def test_chat_model_is_text_only(api: Api) -> None:
    """The chat model outputs text only (the queue rejects it) and has no request schema."""
    _, model = await api.request("GET", f"/api/ai/models/{CHAT}")
    assert model["capabilities"]["output"] == ["text"]
    assert model["request_schema"] is None and model["json_request_schema"] is None


async def test_unknown_model_is_404_message(api: Api) -> None:
    """GET /api/ai/models/{unknown} is 404 {"error": {"message": "Model not found: X"}}."""
    assert await api.request("GET", "/api/ai/models/nope") == (
        404,
        {"error": {"message": "Model not found: nope"}},
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("kling", {KLING, OMNI, T2V}),
        ("FLUX", {FLUX, KLEIN}),
        ("black forest", {FLUX, KLEIN}),
        ("zzz-nothing", set()),
    ],
)
async def test_search(api: Api, query: str, expected: set[str]) -> None:
    """search= matches id, name, description or developer, case-insensitively, in a list envelope."""
    status, payload = await api.request("GET", "/api/ai/models/search", params={"search": query})
    assert status == 200
    assert payload["object"] == "list"
    assert {model["id"] for model in payload["data"]} == expected


async def test_developer_filter(api: Api) -> None:
    """developer_name= narrows the list to that developer's models."""
    _, payload = await api.request("GET", "/api/ai/models", params={"developer_name": "openai"})
    assert [model["id"] for model in payload["data"]] == [CHAT]


async def test_override_model_serves_any_answer_until_restored(api: Api) -> None:
    """Test hook: override_model makes GET /api/ai/models/{id} answer exactly what a test asked
    (JSON, or raw bytes), for known and unknown ids; listing is unaffected; restore_model undoes it."""
    api.emu.override_model(KLING, ["not", "a", "model"])
    api.emu.override_model("no-such-model", None)
    api.emu.override_model(OMNI, b'{"id": ' + b"[" * 5000)
    assert await api.request("GET", f"/api/ai/models/{KLING}") == (200, ["not", "a", "model"])
    assert await api.request("GET", "/api/ai/models/no-such-model") == (200, None)
    async with api.session.get(api.url(f"/api/ai/models/{OMNI}")) as resp:
        assert (resp.status, resp.content_type) == (200, "application/json")
        assert await resp.read() == b'{"id": ' + b"[" * 5000
    _, listing = await api.request("GET", "/api/ai/models")
    assert KLING in {model["id"] for model in listing["data"]}
    api.emu.restore_model(KLING)
    status, payload = await api.request("GET", f"/api/ai/models/{KLING}")
    assert status == 200 and payload["id"] == KLING
    with pytest.raises(ValueError, match="non-empty"):
        api.emu.override_model("", {})

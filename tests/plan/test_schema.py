"""Model specs, catalogs, the registry schema dialect and every documented kling rule."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchgen.errors import ModelDescriptionError
from batchgen.registry import (
    MODEL_RULES,
    ChainCatalog,
    ModelSpec,
    RequestValidator,
    SnapshotCatalog,
    fast_predicate,
    is_reference_url,
    normalise_schema,
    validate_request,
)
from batchgen.wording import format_path

KLING = "kling-video-o3-pro-reference-to-video"
OMNI = "kling-video-o3-omni"
URL = "https://x.test/a.png"


def spec(model_id: str = KLING) -> ModelSpec:
    """A shipped model spec."""
    found = SnapshotCatalog().get(model_id)
    assert found is not None
    return found


def check(request: dict[str, Any], model_id: str = KLING) -> list[tuple[str, str]]:
    """validate_request for a shipped model, with "model" filled in."""
    return validate_request({"model": model_id, **request}, spec(model_id))


def test_shipped_snapshot_matches_the_documented_schema() -> None:
    """The kling snapshot has exactly the seven documented properties, basic, x-order, enums, defaults, price."""
    kling = spec()
    schema = kling.request_schema
    assert schema is not None and kling.media_type == "video"
    props = schema["properties"]
    assert list(props) == [
        "start_image_url", "tail_image_url", "input_image", "elements", "negative_prompt", "aspect_ratio", "generate_audio",
    ]  # fmt: skip
    assert [props[k]["x-order"] for k in props] == list(range(7))
    assert schema["basic"] == ["start_image_url", "tail_image_url", "input_image"]
    assert props["aspect_ratio"] == {
        **props["aspect_ratio"],
        "enum": ["9:16", "1:1", "16:9"],
        "default": "16:9",
    }
    assert props["generate_audio"]["default"] is False and "required" not in schema
    assert kling.pricing == {"method": "per_video_output_second", "cost_per_second": 0.224}
    assert kling.raw["endpoint"] == "/videos/generate"
    assert SnapshotCatalog().ids() == (OMNI, KLING)


def test_model_spec_reads_either_schema_field_and_media_type() -> None:
    """request_schema is preferred, json_request_schema is the fallback; media type from output or endpoint."""
    a = ModelSpec.from_api(
        {"id": "a", "json_request_schema": {"type": "object"}, "capabilities": {"output": ["image"]}}, "a"
    )
    b = ModelSpec.from_api(
        {"id": "b", "request_schema": {"title": "x"}, "json_request_schema": {"title": "y"}}, "b"
    )
    c = ModelSpec.from_api({"id": "c", "endpoint": "/videos/generate"}, "c")
    d = ModelSpec.from_api(
        {"id": "d", "endpoint": "/chat/completions", "capabilities": {"output": ["text"]}}, "d"
    )
    assert (a.request_schema, a.media_type) == ({"type": "object"}, "image")
    assert b.request_schema == {"title": "x"}
    assert (c.media_type, c.request_schema, c.pricing) == ("video", None, None)
    assert d.media_type == "text"
    with pytest.raises(ModelDescriptionError, match="no 'id'"):
        ModelSpec.from_api({"object": "model"}, "m")


def test_catalogs_of_given_specs_and_chained() -> None:
    """Given model specs are a catalog; a chain asks each catalog in order."""
    local = SnapshotCatalog([ModelSpec.from_api({"id": KLING, "endpoint": "/images/generate"}, KLING)])
    chain = ChainCatalog(local, SnapshotCatalog())
    found = chain.get(KLING)
    assert found is not None and found.media_type == "image"  # the first catalog wins
    assert chain.get(OMNI) is not None and chain.get("nope") is None
    assert chain.ids() == (OMNI, KLING)


def test_normalise_schema_handles_the_openapi_dialect() -> None:
    """nullable adds null, boolean exclusive bounds become numbers, a closed top level is opened."""
    schema = normalise_schema(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "a": {"type": "string", "nullable": True, "enum": ["x"]},
                "b": {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "x-order": 1},
                "c": {"type": "number", "maximum": 1, "exclusiveMaximum": False},
            },
        }
    )
    assert "additionalProperties" not in schema
    assert schema["properties"]["a"]["type"] == ["string", "null"] and schema["properties"]["a"]["enum"] == [
        "x",
        None,
    ]
    assert schema["properties"]["b"]["exclusiveMinimum"] == 0 and "minimum" not in schema["properties"]["b"]
    assert schema["properties"]["c"] == {"type": "number", "maximum": 1}
    jsonschema.Draft202012Validator.check_schema(schema)


def test_unknown_parameters_pass_and_known_ones_are_listed() -> None:
    """The registry schema omits prompt/multi_prompt/duration, so unknown keys are never rejected."""
    assert check({"prompt": "x", "shot_type": "customize", "anything": [1, {"a": 2}]}) == []
    known = RequestValidator(spec()).known_parameters
    assert {
        "prompt",
        "multi_prompt",
        "duration",
        "seed",
        "target_namespace",
        "aspect_ratio",
        "model",
    } <= known


@pytest.mark.parametrize(
    ("request_", "problems"),
    [
        ({"prompt": "x", "multi_prompt": [{"prompt": "y"}]}, [("multi_prompt", "Cannot provide both 'prompt' and 'multi_prompt'.")]),
        ({}, [("prompt", "Either 'prompt' or 'multi_prompt' must be provided.")]),
        ({"multi_prompt": []}, [("prompt", "Either 'prompt' or 'multi_prompt' must be provided.")]),
        ({"prompt": "x" * 512}, []),
        ({"prompt": "x" * 513}, [("prompt", "is 513 characters long; at most 512 are allowed")]),
        ({"multi_prompt": [{"prompt": "y" * 600}]}, [("multi_prompt[0].prompt", "is 600 characters long; at most 512 are allowed")]),
        ({"multi_prompt": [{"prompt": "a"}, {"duration": 3}]}, [("multi_prompt[1].prompt", "Field required")]),
        ({"multi_prompt": [{"prompt": "a", "duration": 16}]}, [
            ("multi_prompt[0].duration", "Input should be '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14' or '15'"),
            ("multi_prompt", "Total shot duration (16s) exceeds maximum allowed (15s)."),
        ]),
        ({"multi_prompt": [{"prompt": "a", "duration": 0}, {"prompt": "b", "duration": 5}]}, [
            ("multi_prompt[0].duration", "Input should be '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14' or '15'"),
        ]),
        ({"prompt": "x", "duration": 3}, []),
        ({"prompt": "x", "duration": 15}, []),
        ({"prompt": "x", "duration": 2}, [("duration", "duration value '2' is invalid. Try using duration='5' instead, as duration support may vary by model and mode.")]),
        ({"prompt": "x", "duration": 16}, [("duration", "duration value '16' is invalid. Try using duration='5' instead, as duration support may vary by model and mode.")]),
        ({"multi_prompt": [{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 1}]}, []),
        ({"multi_prompt": [{"prompt": "a", "duration": 1}, {"prompt": "b", "duration": 1}]}, [("multi_prompt", "duration value '2' is invalid. Try using duration='5' instead, as duration support may vary by model and mode.")]),
        ({"multi_prompt": [{"prompt": "a"}] * 3}, []),
        ({"multi_prompt": [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c", "duration": 6}]}, [("multi_prompt", "Total shot duration (16s) exceeds maximum allowed (15s).")]),
        ({"multi_prompt": [{"prompt": "a", "duration": 1}]}, [("multi_prompt", "duration value '1' is invalid. Try using duration='5' instead, as duration support may vary by model and mode.")]),
        ({"prompt": "x", "input_image": [URL] * 4}, []),
        ({"prompt": "x", "input_image": [URL] * 5}, [("input_image", "Maximum 4 images total (input_image + elements) allowed; this request has 5.")]),
        ({"prompt": "x", "input_image": [URL] * 2, "elements": [{"frontal_image_url": URL, "reference_image_urls": [URL, URL]}]}, [
            ("input_image", "Maximum 4 images total (input_image + elements) allowed; this request has 5."),
        ]),
        ({"prompt": "x", "elements": [{"frontal_image_url": URL, "reference_image_urls": [URL] * 4}]}, [
            ("elements", "Maximum 4 images total (input_image + elements) allowed; this request has 5."),
            ("elements[0].reference_image_urls", "has 4 images; at most 3 reference images per element"),
        ]),
        ({"prompt": "x", "elements": [{"reference_image_urls": [URL]}]}, [("elements[0].frontal_image_url", "Field required")]),
        # an item that is no mapping leaves the indices of those after it as they are in the request
        ({"multi_prompt": ["oops", {"prompt": "y" * 600}, {"prompt": "b", "duration": 0}]}, [
            ("multi_prompt[0]", 'expected a mapping, got a string "oops"'),
            ("multi_prompt[1].prompt", "is 600 characters long; at most 512 are allowed"),
            ("multi_prompt[2].duration", "Input should be '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14' or '15'"),
        ]),
        ({"prompt": "x", "elements": ["oops", {"reference_image_urls": ["mug"]}]}, [
            ("elements[0]", 'expected a mapping, got a string "oops"'),
            ("elements[1].frontal_image_url", "Field required"),
            ("elements[1].reference_image_urls[0]", '"mug" is not a URL: expected an http(s) URL, a data: URI or an asset reference like {asset:NAME}'),
        ]),
        ({"prompt": "x", "tail_image_url": URL}, [("tail_image_url", "requires start_image_url")]),
        ({"prompt": "x", "tail_image_url": URL, "start_image_url": URL}, []),
        ({"prompt": "x", "aspect_ratio": "4:3"}, [("aspect_ratio", '"4:3" is not one of "9:16", "1:1", "16:9"')]),
        ({"prompt": "x", "start_image_url": "mug.png"}, [("start_image_url", '"mug.png" is not a URL: expected an http(s) URL, a data: URI or an asset reference like {asset:NAME}')]),
        ({"prompt": "x", "input_image": ["mug"]}, [("input_image[0]", '"mug" is not a URL: expected an http(s) URL, a data: URI or an asset reference like {asset:NAME}')]),
        ({"prompt": "x", "input_image": ["data:image/png;base64,AA", "batchgen-asset:sha256:" + "0" * 64]}, []),
        ({"prompt": "x", "generate_audio": "true", "seed": "1"}, [("generate_audio", 'expected true or false, got a string "true"'), ("seed", 'expected an integer, got a string "1"')]),
        ({"prompt": "x", "response_format": "b64_json", "target_namespace": "org"}, []),
    ],
)  # fmt: skip
def test_kling_reference_to_video_rules(request_: dict[str, Any], problems: list[tuple[str, str]]) -> None:
    """Each documented kling rule, with the documented error string where there is one."""
    assert check(request_) == problems


@pytest.mark.parametrize(
    ("request_", "problems"),
    [
        ({"prompt": "x", "duration": 15, "resolution": "4k", "video_mode": "reference"}, []),
        ({}, [("prompt", "Field required")]),
        ({"prompt": "x", "duration": 2}, [("duration", "must be ≥ 3, got 2")]),
        ({"prompt": "x", "multi_prompt": [{"prompt": "y"}]}, [("multi_prompt", "this model does not accept 'multi_prompt'")]),
        ({"prompt": "x", "input_image": [URL] * 7}, []),
        ({"prompt": "x", "input_image": [URL] * 8}, [("input_image", "Maximum 7 images total (input_image + elements) allowed; this request has 8.")]),
        ({"prompt": "x", "input_video": URL, "input_image": [URL] * 5}, [("input_image", "Maximum 4 images total (input_image + elements) allowed; this request has 5.")]),
        ({"prompt": "x", "input_video": "clip.mp4"}, [("input_video", '"clip.mp4" is not a URL: expected an http(s) URL, a data: URI or an asset reference like {asset:NAME}')]),
    ],
)  # fmt: skip
def test_omni_rules(request_: dict[str, Any], problems: list[tuple[str, str]]) -> None:
    """kling-video-o3-omni: prompt required, no multi_prompt, 3-15 s, 7 images (4 with a video)."""
    assert check(request_, OMNI) == problems


def test_rules_are_keyed_by_model_id() -> None:
    """MODEL_RULES has an entry for each shipped model; a model without rules gets schema checks only."""
    assert set(MODEL_RULES) == {KLING, OMNI}
    bare = ModelSpec.from_api(
        {"id": "other", "endpoint": "/videos/generate", "request_schema": {"required": ["prompt"]}}, "other"
    )
    assert validate_request({"model": "other", "multi_prompt": "anything"}, bare) == [
        ("prompt", "Field required")
    ]


def test_invalid_registry_schema_is_reported() -> None:
    """A registry schema that is not valid JSON Schema is refused by from_api, and one problem (not a
    crash) for a spec built without it."""
    raw = {"id": "x", "endpoint": "/videos/generate", "request_schema": {"type": 5}}
    with pytest.raises(ModelDescriptionError, match="its request schema is not valid JSON Schema"):
        ModelSpec.from_api(raw, "x")
    broken = ModelSpec(id="x", media_type="video", request_schema={"type": 5}, pricing=None, raw=raw)
    [(path, message)] = validate_request({"model": "x"}, broken)
    assert path == "" and message.startswith("the registry schema of x is not valid JSON Schema")


def test_non_decomposable_schema_is_validated_whole() -> None:
    """A schema with top-level keywords beyond properties/required is checked as one (still tolerant)."""
    odd = ModelSpec.from_api(
        {"id": "x", "endpoint": "/videos/generate", "request_schema": {"type": "object", "minProperties": 3}},
        "x",
    )
    assert not RequestValidator(odd).per_field
    assert validate_request({"model": "x"}, odd) == [("", "{'model': 'x'} does not have enough properties")]


def test_reference_urls() -> None:
    """A URL field takes http(s) with a host, data: URIs, or batchgen placeholders."""
    assert is_reference_url("https://hub.oxen.ai/a.png") and is_reference_url("http://localhost:8080/x")
    assert is_reference_url("data:image/png;base64,AA") and is_reference_url("batchgen-asset:sha256:00")
    assert (
        not is_reference_url("https:///x") and not is_reference_url("ftp://x/y") and not is_reference_url(5)
    )


def test_format_path() -> None:
    """Paths print as dotted fields with [index] for list items."""
    assert format_path(("jobs", 2, "multi_prompt", 1, "duration")) == "jobs[2].multi_prompt[1].duration"
    assert format_path(()) == "" and format_path((0, "a")) == "[0].a"


SCHEMAS = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer", "minimum": 1, "maximum": 15},
        {"type": "number", "exclusiveMinimum": 0},
        {"enum": ["9:16", "1:1", "16:9"]},
        {"type": ["string", "null"], "maxLength": 3},
        {"type": "string", "format": "uri"},
        {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        {"type": "array", "items": {"type": "object", "properties": {"prompt": {"type": "string"}, "duration": {"type": "integer"}}}},
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "boolean"}}},
    ]
)  # fmt: skip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-20, 20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "abc", "16:9", "https://x.test/a", "data:x", "nope"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "prompt", "duration"]), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(SCHEMAS, JSON_VALUES)
def test_fast_predicates_never_accept_what_jsonschema_rejects(schema: dict[str, Any], value: Any) -> None:
    """The fast path only ever says "surely valid": whenever it does, jsonschema agrees."""
    predicate = fast_predicate(schema)
    assert predicate is not None
    if predicate(value):
        checker = jsonschema.FormatChecker(formats=())
        checker.checks("uri")(is_reference_url)
        validator = jsonschema.Draft202012Validator(schema, format_checker=checker)
        assert list(validator.iter_errors(value)) == []


def test_validation_cache_keeps_equal_values_of_different_types_apart() -> None:
    """1, 1.0 and True are equal in Python; the per-value cache must not give one's verdict to another."""
    validator = RequestValidator(spec())
    assert validator.check({"model": KLING, "prompt": "x", "seed": 1}) == []
    assert [i.message for i in validator.check({"model": KLING, "prompt": "x", "seed": True})] == [
        "expected an integer, got true"
    ]
    assert (
        validator.check({"model": KLING, "prompt": "x", "seed": 1.0}) == []
    )  # JSON Schema: 1.0 is an integer
    assert validator.check({"model": KLING, "prompt": "x", "generate_audio": True}) == []
    assert [i.message for i in validator.check({"model": KLING, "prompt": "x", "generate_audio": 1})] == [
        "expected true or false, got an integer 1"
    ]

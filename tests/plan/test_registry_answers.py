"""Hostile or broken answers from the model registry: one ModelDescriptionError each, never a traceback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from batchgen.errors import ModelDescriptionError, UserError
from batchgen.registry import (
    MAX_MODEL_DEPTH,
    MAX_MODEL_VALUES,
    ModelSpec,
    RequestValidator,
    SnapshotCatalog,
    validate_request,
)

MODEL = "some-video-model"


def model(schema: Any = None, **extra: Any) -> dict[str, Any]:
    """A model object for MODEL with `schema` as its request schema."""
    return {"id": MODEL, "endpoint": "/videos/generate", "request_schema": schema, **extra}


def nested(levels: int) -> dict[str, Any]:
    """A schema `levels` properties deep (built without recursion)."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def refusal(answer: Any) -> str:
    """The reason from_api gives for refusing `answer` (fails if it is accepted)."""
    with pytest.raises(ModelDescriptionError) as caught:
        ModelSpec.from_api(answer, MODEL)
    prefix = f"the API's description of model {MODEL} is unusable: "
    message = str(caught.value)
    assert message.startswith(prefix) and "\n    hint: nothing was sent" in message
    assert caught.value.model_id == MODEL and isinstance(caught.value, UserError)
    return caught.value.reason


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ([{"id": MODEL}], "expected a JSON object describing the model, got an array"),
        ("Model not found", 'expected a JSON object describing the model, got a string "Model not found"'),
        (None, "expected a JSON object describing the model, got null"),
        (7, "expected a JSON object describing the model, got a number 7"),
        ({"object": "model"}, 'it has no \'id\' (the answer was {"object": "model"})'),
        ({"id": ""}, "it has no 'id' (the answer was {\"id\": \"\"})"),
        (model(["prompt"]), "its request schema is an array, not a JSON object"),
        (model(True), "its request schema is a boolean, not a JSON object"),
        (
            model({"properties": {"prompt": {"type": "string", "pattern": "[unclosed"}}}),
            "its request schema has a pattern Python's re cannot compile: \"[unclosed\" "
            "(unterminated character set at position 0)",
        ),
        (
            model({"patternProperties": {"(x": {"type": "string"}}}),
            "its request schema has a pattern Python's re cannot compile: \"(x\" "
            "(missing ), unterminated subpattern at position 0)",
        ),
        (model(nested(800)), f"its description nests objects and arrays more than {MAX_MODEL_DEPTH} levels deep"),
        (model({"$ref": "#"}), 'its request schema is recursive: $ref "#" leads back to itself'),
        (
            model({"properties": {"shots": {"type": "array", "items": {"$ref": "#/properties/shots"}}}}),
            'its request schema is recursive: $ref "#/properties/shots" leads back to itself',
        ),
        (
            model({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
            'its request schema is recursive: $ref "#/$defs/a" leads back to itself',
        ),
        (
            model({"properties": {"x": {"$ref": "https://example.test/s.json"}}}),
            'its request schema has a $ref to another document ("https://example.test/s.json"); '
            "batchgen follows only references within the schema",
        ),
        (
            model({"properties": {"x": {"$ref": "#shot"}}}),
            'its request schema has a $ref to an anchor ("#shot"); batchgen follows only JSON pointers',
        ),
        (
            model({"properties": {"x": {"$ref": "#/$defs/missing"}}}),
            'its request schema has a $ref that points to nothing ("#/$defs/missing")',
        ),
        (model({"$dynamicRef": "#meta"}), "its request schema uses $dynamicRef, which batchgen does not follow"),
        (
            model({"type": 5}),
            "its request schema is not valid JSON Schema: 5 is not valid under any of the given schemas",
        ),
        (
            model({"type": "object"}, pricing={"method": "per_image", "cost_per_image": "1e999999"}),
            'its price cost_per_image = "1e999999" is over $10,000 per unit',
        ),
        (
            model({"enum": list(range(MAX_MODEL_VALUES))}),
            f"its description has more than {MAX_MODEL_VALUES:,} values",
        ),
        (model({"description": "x" * 1_000_001}), "its description holds more than 1,000,000 characters of text"),
    ],
    ids=[
        "list",
        "string",
        "null",
        "number",
        "no-id",
        "empty-id",
        "schema-list",
        "schema-bool",
        "bad-pattern",
        "bad-pattern-properties",
        "800-deep",
        "ref-root",
        "ref-ancestor",
        "ref-mutual",
        "ref-remote",
        "ref-anchor",
        "ref-nowhere",
        "dynamic-ref",
        "invalid-schema",
        "absurd-price",
        "too-many-values",
        "too-much-text",
    ],
)  # fmt: skip
def test_hostile_registry_answers_are_one_clear_error(answer: Any, reason: str) -> None:
    """Each broken or hostile answer is a ModelDescriptionError (a UserError: exit 2) naming the reason."""
    assert refusal(answer) == reason


def test_refs_that_expand_exponentially_are_refused() -> None:
    """Eight $defs each using the previous one ten times (10**8 copies, shallow) are refused by size."""
    defs: dict[str, Any] = {"d0": {"type": "string"}}
    for i in range(1, 9):
        defs[f"d{i}"] = {"anyOf": [{"$ref": f"#/$defs/d{i - 1}"}] * 10}
    reason = refusal(model({"$defs": defs, "properties": {"x": {"$ref": "#/$defs/d8"}}}))
    assert (
        reason == f"its request schema has more than {MAX_MODEL_VALUES:,} subschemas with its $refs expanded"
    )


def test_schema_expanded_past_the_depth_limit_by_refs_is_refused() -> None:
    """Each $def is shallow, but a chain of them nests deeper than the limit once expanded."""
    defs: dict[str, Any] = {"d0": {"type": "string"}}
    for i in range(1, 16):
        defs[f"d{i}"] = {"type": "object", "properties": {"a": {"$ref": f"#/$defs/d{i - 1}"}}}
    reason = refusal(model({"$defs": defs, "properties": {"x": {"$ref": "#/$defs/d15"}}}))
    assert reason == "its request schema nests more than 32 levels deep with its $refs expanded"


def test_local_refs_are_expanded_and_validate_per_field() -> None:
    """`$defs` + `$ref` (as pydantic writes them) are expanded in place, so each parameter's own
    validator works without resolving anything; sibling keywords are kept through allOf."""
    schema = {
        "type": "object",
        "properties": {
            "shots": {"type": "array", "items": {"$ref": "#/$defs/Shot"}},
            "ratio": {"$ref": "#/$defs/Ratio", "description": "the aspect ratio"},
        },
        "$defs": {
            "Shot": {
                "type": "object",
                "properties": {"duration": {"type": "integer"}},
                "required": ["duration"],
            },
            "Ratio": {"enum": ["16:9", "9:16"]},
        },
    }
    spec = ModelSpec.from_api(model(schema), MODEL)
    assert spec.request_schema is not None and "$ref" not in json.dumps(spec.request_schema)
    assert "$defs" not in spec.request_schema
    assert spec.request_schema["properties"]["ratio"] == {
        "description": "the aspect ratio",
        "allOf": [{"enum": ["16:9", "9:16"]}],
    }
    validator = RequestValidator(spec)
    assert validator.per_field
    request = {"model": MODEL, "shots": [{"duration": "5"}, {}], "ratio": "4:3"}
    assert validate_request(request, spec) == [
        ("shots[0].duration", 'expected an integer, got a string "5"'),
        ("shots[1]", "'duration' is a required property"),
        ("ratio", '"4:3" is not one of "16:9", "9:16"'),
    ]


def test_the_shipped_snapshots_pass_the_checks_unchanged() -> None:
    """The shipped model objects are accepted, and their schemas (no $ref) are kept as they are."""
    for spec in (SnapshotCatalog().get(i) for i in SnapshotCatalog().ids()):
        assert spec is not None
        assert spec.request_schema == spec.raw["request_schema"]


def test_a_schema_jsonschema_cannot_handle_is_an_issue_not_a_crash() -> None:
    """A spec built without from_api's checks ($ref to itself, an invalid pattern) makes jsonschema
    fail; the validator reports it as an Issue instead of raising RecursionError or re.error."""
    looping = ModelSpec(id="x", media_type="video", request_schema={"$ref": "#"}, pricing=None, raw={})
    [(path, message)] = validate_request({"model": "x"}, looping)
    assert (path, message) == (
        "",
        "cannot be checked against the model's request schema (jsonschema failed: RecursionError)",
    )
    schema = {"properties": {"prompt": {"type": "string", "pattern": "[unclosed"}}}
    bad_pattern = ModelSpec(id="x", media_type="video", request_schema=schema, pricing=None, raw={})
    issues = RequestValidator(bad_pattern).check({"model": "x", "prompt": "hello"})
    assert [(i.path, i.message) for i in issues] == [
        (("prompt",), "cannot be checked against the model's request schema (jsonschema failed: error)")
    ]


def test_an_accepted_schema_at_the_depth_limit_validates_deep_requests() -> None:
    """A schema as deep as the limit allows, checked against a request nested as deep as a manifest
    may be, gives issues, never RecursionError."""
    levels = (MAX_MODEL_DEPTH - 4) // 2
    spec = ModelSpec.from_api(model({"type": "object", "properties": {"p": nested(levels)}}), MODEL)
    value: Any = 5
    for _ in range(32):
        value = {"a": value}
    issues = RequestValidator(spec).check({"model": MODEL, "p": value})
    assert issues and issues[0].message == "expected a string, got a mapping"


_KEYWORDS = [
    "type",
    "properties",
    "items",
    "allOf",
    "anyOf",
    "not",
    "$ref",
    "pattern",
    "enum",
    "$defs",
    "required",
]
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(["#", "#/$defs/a", "#/properties/a", "string", "(", "a+"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from([*_KEYWORDS, "a"]), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(answer=_JSON, request_value=_JSON)
@example(answer={"properties": {"type": {}}}, request_value=None)  # an empty property schema: anything
def test_any_answer_is_accepted_or_refused_and_validation_never_raises(
    answer: Any, request_value: Any
) -> None:
    """Whatever JSON the registry sends as a request schema, from_api accepts it or raises
    ModelDescriptionError, and validating a request against an accepted one never raises."""
    try:
        spec = ModelSpec.from_api(
            model(answer if isinstance(answer, dict) else {"properties": {"a": answer}}), MODEL
        )
    except ModelDescriptionError:
        return
    validate_request({"model": MODEL, "a": request_value}, spec)

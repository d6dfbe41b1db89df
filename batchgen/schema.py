"""Validating requests before anything is sent: model specs, catalogs, the registry schema, model rules.

`validate_request` checks one request body against (1) the model's registry `request_schema`
(OpenAPI-flavoured JSON Schema, normalised to draft 2020-12; unknown keys are never rejected) and
(2) the model's documented rules (`MODEL_RULES`, keyed by model id), which the registry schema
cannot express: prompt xor multi_prompt, duration ranges, the image cap, and so on.

`RequestValidator` is the compiled form used by the planner: each top-level parameter is validated
by its own sub-schema and the result is cached per distinct value, so 100,000 requests that share a
handful of distinct values cost a handful of jsonschema runs.

The only I/O here is `SnapshotCatalog` reading the model snapshots shipped in `batchgen/data/models/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

from batchgen.errors import ModelDescriptionError
from batchgen.manifest.model import ASSET_PLACEHOLDER_PREFIX
from batchgen.wording import URL_EXPECTED, describe_error, describe_value, format_path

__all__ = [
    "GENERIC_PARAMETERS",
    "MAX_MODEL_DEPTH",
    "MAX_MODEL_TEXT",
    "MAX_MODEL_VALUES",
    "MAX_UNIT_PRICE_USD",
    "MODEL_RULES",
    "ChainCatalog",
    "Issue",
    "ListableCatalog",
    "ModelCatalog",
    "ModelRules",
    "ModelSpec",
    "RequestValidator",
    "Rule",
    "SnapshotCatalog",
    "fast_predicate",
    "is_reference_url",
    "known_model_ids",
    "normalise_schema",
    "rule_checks",
    "total_duration",
    "validate_request",
]

PathTuple = tuple[str | int, ...]


# ---------------------------------------------------------------- model specs and catalogs


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What batchgen needs to know about one model, read from a `GET /api/ai/models/{id}` object."""

    id: str
    media_type: str  # "video" | "image" | "text"
    request_schema: Mapping[str, Any] | None  # checked, with every $ref expanded (see from_api)
    pricing: Mapping[str, Any] | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_api(cls, obj: Any, model_id: str) -> ModelSpec:
        """Build from the API's answer about `model_id` (`request_schema`, else `json_request_schema`).

        The answer is checked like any other input: `ModelDescriptionError` unless it is a model object
        whose request schema is valid JSON Schema within the size limits, with local, non-recursive
        `$ref`s only (they are expanded here, so validation never resolves one) and patterns that
        Python's `re` compiles.
        """
        try:
            return cls._checked(obj)
        except _Unusable as exc:
            raise ModelDescriptionError(model_id, str(exc)) from None

    @classmethod
    def _checked(cls, obj: Any) -> ModelSpec:
        if not isinstance(obj, Mapping):
            raise _Unusable(f"expected a JSON object describing the model, got {_json_kind(obj)}")
        _check_size(obj, "its description")
        own_id = obj.get("id") or obj.get("name")
        if not isinstance(own_id, str) or not own_id:
            raise _Unusable(f"it has no 'id' (the answer was {describe_value(obj, 120)})")
        schema = obj.get("request_schema") or obj.get("json_request_schema")
        if schema is not None and not isinstance(schema, Mapping):
            raise _Unusable(f"its request schema is {_json_kind(schema)}, not a JSON object")
        pricing = obj.get("pricing")
        pricing = pricing if isinstance(pricing, Mapping) else None
        _check_prices(pricing)
        return cls(
            id=own_id,
            media_type=_media_type(obj),
            request_schema=None if schema is None else _checked_schema(schema),
            pricing=pricing,
            raw=obj,
        )


def _media_type(obj: Mapping[str, Any]) -> str:
    capabilities = obj.get("capabilities")
    output = capabilities.get("output") if isinstance(capabilities, Mapping) else None
    if isinstance(output, list) and output:
        for kind in ("video", "image"):
            if kind in output:
                return kind
        return "text"
    endpoint = obj.get("endpoint")
    return {"/videos/generate": "video", "/images/generate": "image"}.get(str(endpoint), "text")


class ModelCatalog(Protocol):
    """Anything that can look a model up by id (snapshots, the live registry, a chain of both)."""

    def get(self, model_id: str) -> ModelSpec | None: ...


@runtime_checkable
class ListableCatalog(Protocol):
    """A catalog that can also list its ids (used for "did you mean" on an unknown model)."""

    def get(self, model_id: str) -> ModelSpec | None: ...

    def ids(self) -> tuple[str, ...]: ...


class SnapshotCatalog:
    """Model objects stored as JSON files; by default the snapshots shipped with batchgen."""

    def __init__(self, specs: Iterable[ModelSpec] | None = None) -> None:
        self._specs = {s.id: s for s in (_shipped_specs() if specs is None else specs)}

    @classmethod
    def from_directory(cls, directory: Path) -> SnapshotCatalog:
        """Load every `*.json` model object in `directory`."""
        return cls(
            ModelSpec.from_api(json.loads(p.read_text("utf-8")), p.stem)
            for p in sorted(directory.glob("*.json"))
        )

    def get(self, model_id: str) -> ModelSpec | None:
        return self._specs.get(model_id)

    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._specs))


def _shipped_specs() -> list[ModelSpec]:
    folder = resources.files("batchgen").joinpath("data", "models")
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".json")), key=lambda e: e.name)
    return [
        ModelSpec.from_api(json.loads(e.read_text("utf-8")), e.name.removesuffix(".json")) for e in entries
    ]


class ChainCatalog:
    """Asks each catalog in turn; the first that knows the model wins."""

    def __init__(self, *catalogs: ModelCatalog) -> None:
        self._catalogs = catalogs

    def get(self, model_id: str) -> ModelSpec | None:
        for catalog in self._catalogs:
            spec = catalog.get(model_id)
            if spec is not None:
                return spec
        return None

    def ids(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for catalog in self._catalogs:
            seen.update(dict.fromkeys(known_model_ids(catalog)))
        return tuple(sorted(seen))


def known_model_ids(catalog: ModelCatalog) -> tuple[str, ...]:
    """The ids a catalog can list (empty when it cannot)."""
    return catalog.ids() if isinstance(catalog, ListableCatalog) else ()


# ---------------------------------------------------------------- the rules the registry schema omits

#: Parameters the queue itself accepts for every model (oxen-api.md §1).
GENERIC_PARAMETERS: Mapping[str, Any] = {
    "target_namespace": {"type": "string", "minLength": 1},
    "seed": {"type": "integer"},
}

_SHOT_SCHEMA = {
    "type": "object",
    "properties": {"prompt": {"type": "string"}, "duration": {"type": "integer"}},
}
_KLING_REFERENCE_EXTRAS: Mapping[str, Any] = {
    "prompt": {"type": "string"},
    "multi_prompt": {"type": "array", "items": _SHOT_SCHEMA},
    "duration": {"type": "integer"},
    "response_format": {"enum": ["url", "b64_json"]},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRules:
    """A model's documented rules beyond its registry schema. None/False switches a rule off."""

    extra_properties: Mapping[str, Any] = field(default_factory=dict)  # schema for omitted parameters
    prompt_xor_multi_prompt: bool = False
    accepts_multi_prompt: bool = True
    max_prompt_chars: int | None = None
    total_duration_s: tuple[int, int] | None = None
    shot_duration_s: tuple[int, int] | None = None
    default_duration_s: int = 5
    max_images: int | None = None  # input_image + every element's frontal and reference images
    max_images_with_video: int | None = None
    max_reference_images_per_element: int | None = None
    tail_needs_start: bool = False


MODEL_RULES: Mapping[str, ModelRules] = {
    # oxen-api.md §6.3 (walkthrough WT and VG): the documented rules and error strings.
    "kling-video-o3-pro-reference-to-video": ModelRules(
        extra_properties=_KLING_REFERENCE_EXTRAS,
        prompt_xor_multi_prompt=True,
        max_prompt_chars=512,
        total_duration_s=(3, 15),
        shot_duration_s=(1, 15),
        max_images=4,
        max_reference_images_per_element=3,
        tail_needs_start=True,
    ),
    # oxen-api.md §6.4: prompt is required (in its schema), duration 3-15 (in its schema), no multi_prompt.
    "kling-video-o3-omni": ModelRules(
        extra_properties={"response_format": {"enum": ["url", "b64_json"]}},
        accepts_multi_prompt=False,
        max_prompt_chars=512,
        max_images=7,
        max_images_with_video=4,
        max_reference_images_per_element=3,
        tail_needs_start=True,
    ),
}
NO_RULES = ModelRules()

#: Defaults the docs give for parameters the registry schema omits or shows without a default
#: (the walkthrough's `duration` and `negative_prompt`); a service may fill them in and echo them.
DOCUMENTED_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "kling-video-o3-pro-reference-to-video": {"duration": 5, "negative_prompt": "blur, distort, and low quality"},
}


def echoable_defaults(spec: ModelSpec) -> dict[str, Any]:
    """Values the service may fill in, and echo in its rows, for parameters a request leaves out: the
    request schema's `default`s plus the documented ones. A reconcile accepts a row whose extra echoed
    parameters all equal these (it is still ours)."""
    properties = (spec.request_schema or {}).get("properties")
    found = {
        name: prop["default"]
        for name, prop in (properties.items() if isinstance(properties, Mapping) else ())
        if isinstance(prop, Mapping) and "default" in prop
    }
    return {**DOCUMENTED_DEFAULTS.get(spec.id, {}), **found}


class Issue(NamedTuple):
    """One thing wrong with a request: where (a path inside the request), what, and how to fix it."""

    path: PathTuple
    message: str
    hint: str | None = None
    keyword: str | None = None  # the JSON Schema keyword that failed (schema issues only)


# The documented error strings (oxen-api.md §6.3), without the "422 - Value error, " envelope.
_BOTH = "Cannot provide both 'prompt' and 'multi_prompt'."
_NEITHER = "Either 'prompt' or 'multi_prompt' must be provided."


def _shot_range_message(low: int, high: int) -> str:
    values = [f"'{n}'" for n in range(low, high + 1)]
    return "Input should be " + ", ".join(values[:-1]) + " or " + values[-1]


class _Request:
    """The parts of a request the rules look at, each extracted once (the rules run per job)."""

    __slots__ = ("elements", "get", "images", "request", "shots")

    def __init__(self, request: Mapping[str, Any]) -> None:
        self.request = request
        self.get = request.get
        shots = request.get("multi_prompt")
        self.shots = [s for s in shots if type(s) is dict] if type(shots) is list else []
        elements = request.get("elements")
        self.elements = [e for e in elements if type(e) is dict] if type(elements) is list else []
        images = request.get("input_image")
        self.images = images if type(images) is list else []


RuleCheck = Callable[[_Request, ModelRules, list[Issue]], None]


def _check_prompt_choice(r: _Request, rules: ModelRules, out: list[Issue]) -> None:
    has_prompt = r.get("prompt") is not None
    shots = r.get("multi_prompt")
    if shots is not None and not rules.accepts_multi_prompt:
        out.append(
            Issue(("multi_prompt",), "this model does not accept 'multi_prompt'", "use 'prompt' instead")
        )
    elif rules.prompt_xor_multi_prompt:
        has_shots = shots is not None and shots != []
        if has_prompt and has_shots:
            out.append(Issue(("multi_prompt",), _BOTH, "keep one of them"))
        elif not has_prompt and not has_shots:
            out.append(Issue(("prompt",), _NEITHER))


def _check_prompt_length(r: _Request, rules: ModelRules, out: list[Issue]) -> None:
    limit = rules.max_prompt_chars or 0
    prompt = r.get("prompt")
    if type(prompt) is str and len(prompt) > limit:
        out.append(Issue(("prompt",), f"is {len(prompt)} characters long; at most {limit} are allowed"))
    for i, shot in enumerate(r.shots):
        text = shot.get("prompt")
        if type(text) is str and len(text) > limit:
            path = ("multi_prompt", i, "prompt")
            out.append(Issue(path, f"is {len(text)} characters long; at most {limit} are allowed"))


def _check_shots(r: _Request, rules: ModelRules, out: list[Issue]) -> None:
    low, high = rules.shot_duration_s or (1, 15)
    for i, shot in enumerate(r.shots):
        if shot.get("prompt") is None:
            out.append(Issue(("multi_prompt", i, "prompt"), "Field required", "every shot needs a 'prompt'"))
        seconds = shot.get("duration", rules.default_duration_s)
        if type(seconds) is int and not low <= seconds <= high:
            out.append(Issue(("multi_prompt", i, "duration"), _shot_range_message(low, high)))


def total_duration(request: Mapping[str, Any], default_s: int = 5) -> int | None:
    """Seconds of video the request asks for (sum of shots, else `duration`, else the default)."""
    shots = request.get("multi_prompt")
    if type(shots) is list and shots:
        total = 0
        for shot in shots:
            seconds = shot.get("duration", default_s) if type(shot) is dict else None
            if type(seconds) is not int:
                return None
            total += seconds
        return total
    seconds = request.get("duration", default_s)
    return seconds if type(seconds) is int else None


def _check_total_duration(r: _Request, rules: ModelRules, out: list[Issue]) -> None:
    low, high = rules.total_duration_s or (0, 0)
    total = total_duration(r.request, rules.default_duration_s)
    if total is None or low <= total <= high:
        return
    hint = f"the total duration (the sum of the shots, or `duration`) must be {low}-{high} s"
    if r.shots and total > high:
        message = f"Total shot duration ({total}s) exceeds maximum allowed ({high}s)."
        out.append(Issue(("multi_prompt",), message, hint))
        return
    message = (
        f"duration value '{total}' is invalid. Try using duration='5' instead,"
        " as duration support may vary by model and mode."
    )
    out.append(Issue(("multi_prompt",) if r.shots else ("duration",), message, hint))


def _count_images(r: _Request) -> int:
    count = len(r.images)
    for element in r.elements:
        count += element.get("frontal_image_url") is not None
        refs = element.get("reference_image_urls")
        count += len(refs) if type(refs) is list else 0
    return count


def _check_images(r: _Request, rules: ModelRules, out: list[Issue]) -> None:
    limit = rules.max_images or 0
    if rules.max_images_with_video is not None and r.get("input_video") is not None:
        limit = rules.max_images_with_video
    count = _count_images(r)
    if count > limit:
        where = "input_image" if r.images else "elements"
        message = f"Maximum {limit} images total (input_image + elements) allowed; this request has {count}."
        out.append(
            Issue(
                (where,), message, "count every input_image and each element's frontal and reference images"
            )
        )


def _check_elements(r: _Request, rules: ModelRules, out: list[Issue]) -> None:
    limit = rules.max_reference_images_per_element or 0
    for i, element in enumerate(r.elements):
        if element.get("frontal_image_url") is None:
            out.append(
                Issue(("elements", i, "frontal_image_url"), "Field required", "every element needs one")
            )
        refs = element.get("reference_image_urls")
        if type(refs) is list and len(refs) > limit:
            message = f"has {len(refs)} images; at most {limit} reference images per element"
            out.append(Issue(("elements", i, "reference_image_urls"), message))


def _check_tail(r: _Request, rules: ModelRules, out: list[Issue]) -> None:
    if r.get("tail_image_url") is not None and r.get("start_image_url") is None:
        out.append(
            Issue(
                ("tail_image_url",), "requires start_image_url", "set start_image_url (the first frame) too"
            )
        )


def _check_image_urls(r: _Request, rules: ModelRules, out: list[Issue]) -> None:
    for i, url in enumerate(r.images):
        _check_url(("input_image", i), url, out)
    for i, element in enumerate(r.elements):
        _check_url(("elements", i, "frontal_image_url"), element.get("frontal_image_url"), out)
        refs = element.get("reference_image_urls")
        for j, url in enumerate(refs if type(refs) is list else ()):
            _check_url(("elements", i, "reference_image_urls", j), url, out)


def _check_url(path: PathTuple, value: object, out: list[Issue]) -> None:
    if type(value) is str and not is_reference_url(value):
        out.append(Issue(path, f"{describe_value(value)} is not a URL: {URL_EXPECTED}"))


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule check and what it reads.

    `values` is the set of top-level fields whose *values* the check reads; a check whose `values`
    hold no templated field gives the same answer for every expansion of a job spec (templates only
    ever produce scalars, so list lengths and which keys are present never vary), and the planner
    runs it once per spec instead of once per job.
    """

    check: RuleCheck
    values: frozenset[str]


def rule_checks(rules: ModelRules) -> tuple[Rule, ...]:
    """The checks `rules` switches on, in the order their problems are reported."""
    prompts = frozenset({"prompt", "multi_prompt"})
    shots = frozenset({"multi_prompt"})
    images = frozenset({"input_image", "elements"})
    wanted: list[tuple[bool, Rule]] = [
        (
            rules.prompt_xor_multi_prompt or not rules.accepts_multi_prompt,
            Rule(_check_prompt_choice, frozenset()),
        ),
        (rules.max_prompt_chars is not None, Rule(_check_prompt_length, prompts)),
        (rules.accepts_multi_prompt and rules.shot_duration_s is not None, Rule(_check_shots, shots)),
        (rules.total_duration_s is not None, Rule(_check_total_duration, shots | {"duration"})),
        (rules.max_images is not None, Rule(_check_images, frozenset())),
        (rules.max_reference_images_per_element is not None, Rule(_check_elements, frozenset())),
        (rules.tail_needs_start, Rule(_check_tail, frozenset())),
        (rules is not NO_RULES, Rule(_check_image_urls, images)),
    ]
    return tuple(rule for on, rule in wanted if on)


# ---------------------------------------------------------------- the registry schema


def is_reference_url(value: object) -> bool:
    """Whether `value` may be sent where a URL is expected: http(s), data:, or an asset placeholder."""
    if not isinstance(value, str):
        return False
    if value.startswith(("http://", "https://")):
        return _has_host(value)
    return value.startswith(("data:", ASSET_PLACEHOLDER_PREFIX))


@lru_cache(maxsize=4096)
def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:
        return False


_FORMATS = FormatChecker(formats=())
_FORMATS.checks("uri")(is_reference_url)


def normalise_schema(schema: Any, *, top: bool = True) -> Any:
    """OpenAPI-flavoured schema -> draft 2020-12 (`nullable`, boolean exclusive bounds, open top level)."""
    if isinstance(schema, list):
        return [normalise_schema(item, top=False) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {k: normalise_schema(v, top=False) for k, v in schema.items()}
    if out.get("nullable") is True:
        _make_nullable(out)
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool) and out.pop(bound) and limit in out:
            out[bound] = out.pop(limit)
    if top and out.get("additionalProperties") is False:
        del out["additionalProperties"]  # the registry may omit parameters the model accepts
    return out


def _make_nullable(node: dict[str, Any]) -> None:
    kind = node.get("type")
    if isinstance(kind, str):
        node["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        node["type"] = [*kind, "null"]
    if isinstance(node.get("enum"), list) and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]


_DECOMPOSABLE = frozenset(
    {"type", "title", "description", "properties", "required", "basic", "nullable", "$schema", "default"}
)


def _decomposable(schema: Mapping[str, Any]) -> bool:
    extra = {k for k in schema if k not in _DECOMPOSABLE and not k.startswith("x-")}
    return not extra and schema.get("type", "object") in ("object", ["object"])


# ---------------------------------------------------------------- the registry's answer, checked
#
# A model object from the registry is input like any other: a broken or hostile answer must give one
# clear error (ModelDescriptionError), never a traceback, a hang or a stack overflow in jsonschema.
# For scale: the documented Kling schema has about 60 values, 6 levels and 3 KB of text.

#: Deepest nesting of objects and arrays in a model object, and in its request schema once its $refs
#: are expanded: normalise_schema and jsonschema recurse once per level or more.
MAX_MODEL_DEPTH = 32
#: Most values (objects, arrays and scalars) in a model object, and in its request schema once its
#: $refs are expanded (a few $refs used many times each would otherwise expand exponentially).
MAX_MODEL_VALUES = 50_000
#: Most characters in the keys and strings of a model object (or of its expanded request schema).
MAX_MODEL_TEXT = 1_000_000
#: The highest price per second or per image taken at face value (the documented ones are $0.012 to
#: $0.448): above it a quote is nonsense, and formatting an absurd Decimal exponent would fail.
MAX_UNIT_PRICE_USD = 10_000

# JSON Schema keywords whose value is a subschema, a list of subschemas, or a map of name -> subschema
# (draft 2020-12); every other keyword holds data (enum, const, default, ...) or a constraint.
_SUBSCHEMA = frozenset(
    {"additionalProperties", "contains", "propertyNames", "not", "if", "then", "else", "items"}
    | {"unevaluatedItems", "unevaluatedProperties", "contentSchema"}
)
_SUBSCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_DYNAMIC_REFS = frozenset({"$dynamicRef", "$recursiveRef"})


class _Unusable(Exception):
    """Why a model object cannot be used (raised as ModelDescriptionError by ModelSpec.from_api)."""


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str | int | float):
        kind = "a string" if isinstance(value, str) else "a number"
        return f"{kind} {describe_value(value)}"
    return type(value).__name__


def _check_size(value: Any, what: str) -> None:
    """Refuse `value` when it is too deep, has too many values or too much text (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    values = 1
    text = 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            text += len(item)
        elif isinstance(item, Mapping | list):
            if depth > MAX_MODEL_DEPTH:
                raise _Unusable(f"{what} nests objects and arrays more than {MAX_MODEL_DEPTH} levels deep")
            values += len(item)
            if values > MAX_MODEL_VALUES:
                raise _Unusable(f"{what} has more than {MAX_MODEL_VALUES:,} values")
            if isinstance(item, Mapping):
                text += sum(len(key) for key in item if isinstance(key, str))
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        if text > MAX_MODEL_TEXT:
            raise _Unusable(f"{what} holds more than {MAX_MODEL_TEXT:,} characters of text")


def _check_prices(pricing: Mapping[str, Any] | None) -> None:
    for key, value in (pricing or {}).items():
        if (
            not str(key).startswith("cost_per_")
            or isinstance(value, bool)
            or not isinstance(value, int | float | str)
        ):
            continue
        try:
            price = Decimal(str(value))
        except (InvalidOperation, ValueError):
            continue  # not a number: pricing.rate treats it as no price
        if price.is_finite() and price > MAX_UNIT_PRICE_USD:
            raise _Unusable(
                f"its price {key} = {describe_value(value)} is over ${MAX_UNIT_PRICE_USD:,} per unit"
            )


def _checked_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` with its $refs expanded, once it is known to be usable; `_Unusable` otherwise."""
    expanded = _RefExpander(schema).expand()
    _check_size(expanded, "its request schema (with its $refs expanded)")
    try:
        Draft202012Validator.check_schema(normalise_schema(expanded))
    except jsonschema.SchemaError as exc:
        raise _Unusable(f"its request schema is not valid JSON Schema: {_shorten(exc.message)}") from None
    return expanded


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compile_pattern(pattern: str) -> None:
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        reason = f"its request schema has a pattern Python's re cannot compile: {describe_value(pattern)}"
        raise _Unusable(f"{reason} ({_shorten(str(exc), 80)})") from None


class _RefExpander:
    """Copies a schema with every `$ref` replaced by what it points to, so that validating never has
    to resolve one: only JSON pointers into the schema itself, and no cycles. Every `pattern` (and
    `patternProperties` name) met on the way is compiled.

    A `$ref` with sibling keywords becomes one more `allOf` entry, as in draft 2020-12. The root's
    `$defs`/`definitions` are dropped once expanded into place.
    """

    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root
        self._active = [id(root)]  # targets being expanded: meeting one again is a cycle
        self._values = 0

    def expand(self) -> dict[str, Any]:
        out = self._schema(self._root, 1)
        return out if isinstance(out, dict) else {"allOf": [out]}

    def _schema(self, node: Any, depth: int) -> Any:
        if not isinstance(node, Mapping):
            return node  # a boolean schema, or something check_schema refuses
        self._values += 1
        if depth > MAX_MODEL_DEPTH:
            raise _Unusable(
                f"its request schema nests more than {MAX_MODEL_DEPTH} levels deep with its $refs expanded"
            )
        if self._values > MAX_MODEL_VALUES:
            raise _Unusable(
                f"its request schema has more than {MAX_MODEL_VALUES:,} subschemas with its $refs expanded"
            )
        skipped = {"$ref", "$defs", "definitions"} if node is self._root else {"$ref"}
        out = {key: self._keyword(key, value, depth) for key, value in node.items() if key not in skipped}
        if "$ref" not in node:
            return out
        target = self._follow(node["$ref"], depth)
        if not out:
            return target
        earlier = out.get("allOf")
        out["allOf"] = (
            [*earlier, target] if isinstance(earlier, list) else [target] if earlier is None else earlier
        )
        return out

    def _keyword(self, key: str, value: Any, depth: int) -> Any:
        if key in _DYNAMIC_REFS:
            raise _Unusable(f"its request schema uses {key}, which batchgen does not follow")
        if key == "pattern" and isinstance(value, str):
            _compile_pattern(value)
        if key in _SUBSCHEMA:
            return self._schema(value, depth + 1)
        if key in _SUBSCHEMA_LISTS and isinstance(value, list):
            return [self._schema(item, depth + 2) for item in value]
        if key in _SUBSCHEMA_MAPS and isinstance(value, Mapping):
            if key == "patternProperties":
                for name in value:
                    _compile_pattern(str(name))
            return {name: self._schema(item, depth + 2) for name, item in value.items()}
        return value  # data or a constraint: kept as it is

    def _follow(self, ref: Any, depth: int) -> Any:
        target = self._resolve(ref)
        if id(target) in self._active:
            raise _Unusable(
                f"its request schema is recursive: $ref {describe_value(ref)} leads back to itself"
            )
        self._active.append(id(target))
        try:
            return self._schema(target, depth)
        finally:
            self._active.pop()

    def _resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _Unusable(
                f"its request schema has a $ref to another document ({describe_value(ref)}); "
                "batchgen follows only references within the schema"
            )
        pointer = unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            raise _Unusable(
                f"its request schema has a $ref to an anchor ({describe_value(ref)}); batchgen follows only JSON pointers"
            )
        node: Any = self._root
        for token in pointer.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and _is_index(token, len(node)):
                node = node[int(token)]
            else:
                raise _Unusable(
                    f"its request schema has a $ref that points to nothing ({describe_value(ref)})"
                )
        return node


def _is_index(token: str, length: int) -> bool:
    return token.isascii() and token.isdigit() and len(token) < 10 and int(token) < length


# ---------------------------------------------------------------- fast "surely valid" predicates
#
# jsonschema is thorough but slow (tens of microseconds per value). For the common keywords we build
# a plain predicate that answers True only when the value is certainly valid; any False (or a schema
# using other keywords) falls back to jsonschema, which finds the exact errors. So the fast path can
# never hide an error: at worst it sends a valid value down the slow path.

Predicate = Callable[[Any], bool]
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "nullable",
        "$schema",
        "$comment",
        "readOnly",
        "writeOnly",
    }
    | {"deprecated", "renderType", "basic"}
)
_TYPE_TESTS: Mapping[str, Predicate] = {
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) is int or type(v) is float,
    "boolean": lambda v: type(v) is bool,
    "array": lambda v: type(v) is list,
    "object": lambda v: type(v) is dict,
    "null": lambda v: v is None,
}


def fast_predicate(schema: Any) -> Predicate | None:
    """A predicate that is True only for values `schema` surely accepts, or None if unsupported."""
    if schema is True:
        return lambda v: True
    if not isinstance(schema, Mapping):
        return None
    tests: list[Predicate] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword.startswith("x-"):
            continue
        builder = _KEYWORD_TESTS.get(keyword)
        test = builder(value) if builder is not None else None
        if test is None:
            return None
        tests.append(test)
    if len(tests) == 1:
        return tests[0]
    first, *rest = tests
    if len(rest) == 1:
        second = rest[0]
        return lambda v: first(v) and second(v)
    return lambda v: all(t(v) for t in tests)


def _type_test(kinds: Any) -> Predicate | None:
    names = kinds if isinstance(kinds, list) else [kinds]
    tests = [_TYPE_TESTS.get(str(k)) for k in names]
    if any(t is None for t in tests):
        return None
    found = [t for t in tests if t is not None]
    return found[0] if len(found) == 1 else (lambda v: any(t(v) for t in found))


def _enum_test(options: Any) -> Predicate | None:
    if not isinstance(options, list) or not all(isinstance(o, str | int | float | bool) for o in options):
        return None
    allowed = frozenset((type(o), o) for o in options)
    return lambda v: (type(v), v) in allowed if isinstance(v, str | int | float | bool) else False


def _bound_test(compare: Callable[[Any, Any], bool]) -> Callable[[Any], Predicate | None]:
    def build(limit: Any) -> Predicate | None:
        if type(limit) not in (int, float):
            return None
        return lambda v: type(v) not in (int, float) or compare(v, limit)

    return build


def _length_test(compare: Callable[[int, int], bool], kind: type[Sized]) -> Callable[[Any], Predicate | None]:
    def build(limit: Any) -> Predicate | None:
        if type(limit) is not int:
            return None
        return lambda v: type(v) is not kind or compare(len(v), limit)

    return build


def _format_test(name: Any) -> Predicate | None:
    if name != "uri":
        return None
    return lambda v: type(v) is not str or is_reference_url(v)


def _items_test(items: Any) -> Predicate | None:
    test = fast_predicate(items)
    if test is None:
        return None

    def all_items(v: Any) -> bool:
        if type(v) is list:
            for item in v:
                if not test(item):
                    return False
        return True

    return all_items


def _properties_test(properties: Any) -> Predicate | None:
    if not isinstance(properties, Mapping):
        return None
    tests: list[tuple[str, Predicate]] = []
    for name, sub in properties.items():
        test = fast_predicate(sub)
        if test is None:
            return None
        tests.append((name, test))

    def all_properties(v: Any) -> bool:
        if type(v) is dict:
            for name, test in tests:
                if name in v and not test(v[name]):
                    return False
        return True

    return all_properties


def _required_test(names: Any) -> Predicate | None:
    if not isinstance(names, list):
        return None
    return lambda v: type(v) is not dict or all(n in v for n in names)


_KEYWORD_TESTS: Mapping[str, Callable[[Any], Predicate | None]] = {
    "type": _type_test,
    "enum": _enum_test,
    "minimum": _bound_test(lambda v, lim: v >= lim),
    "maximum": _bound_test(lambda v, lim: v <= lim),
    "exclusiveMinimum": _bound_test(lambda v, lim: v > lim),
    "exclusiveMaximum": _bound_test(lambda v, lim: v < lim),
    "minLength": _length_test(lambda n, lim: n >= lim, str),
    "maxLength": _length_test(lambda n, lim: n <= lim, str),
    "minItems": _length_test(lambda n, lim: n >= lim, list),
    "maxItems": _length_test(lambda n, lim: n <= lim, list),
    "format": _format_test,
    "items": _items_test,
    "properties": _properties_test,
    "required": _required_test,
}


_CACHE_LIMIT = 20_000  # distinct values remembered per model (unique prompts would grow it forever)


def _cache_key(name: str, value: Any) -> Any:
    """A hashable key for a value: scalars (with their type: 1, 1.0 and True are equal in Python) and
    lists of strings such as image URLs; None for anything else (shots, elements), which is not cached."""
    kind = type(value)
    if kind is list:
        return (name, list, tuple(value)) if all(type(item) is str for item in value) else None
    return None if kind is dict else (name, kind, value)


#: Schema keywords whose failures a documented rule restates with a better message (counts, presence).
_RESTATED_BY_RULES = frozenset({"required", "maxItems", "minItems", "maxLength", "minLength", "maximum", "minimum"})


def merge_issues(schema_issues: list[Issue], rule_issues: list[Issue]) -> list[Issue]:
    """Both lists, minus the schema issues a documented rule already explains at the same place or
    deeper (a live schema may check a count or a presence that a rule also checks; the rule's message
    says more). Type and enum errors are always kept."""
    rule_paths = [issue.path for issue in rule_issues]
    kept = [issue for issue in schema_issues
            if issue.keyword not in _RESTATED_BY_RULES
            or not any(path[: len(issue.path)] == issue.path for path in rule_paths)]
    return [*kept, *rule_issues]


class RequestValidator:
    """A model's schema and rules, compiled once; `check(request)` returns every Issue found."""

    def __init__(self, spec: ModelSpec, rules: ModelRules | None = None) -> None:
        self.spec = spec
        self.rules = MODEL_RULES.get(spec.id, NO_RULES) if rules is None else rules
        schema = normalise_schema(dict(spec.request_schema or {"type": "object"}))
        properties = dict(schema.get("properties") or {})
        for name, sub in {**GENERIC_PARAMETERS, **self.rules.extra_properties}.items():
            properties.setdefault(name, sub)
        schema["properties"] = properties
        self.schema_error: str | None = None
        try:
            Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            self.schema_error = f"the registry schema of {spec.id} is not valid JSON Schema: {exc.message}"
            schema = {"type": "object"}
        self.known_parameters = frozenset(properties) | {"model"}
        self.default_duration_s = _default_duration(properties, self.rules.default_duration_s)
        self._required = tuple(r for r in schema.get("required", ()) if isinstance(r, str))
        self._whole = None if _decomposable(schema) else Draft202012Validator(schema, format_checker=_FORMATS)
        self._props = {k: Draft202012Validator(v, format_checker=_FORMATS) for k, v in properties.items()}
        self._fast = {k: fast_predicate(v) for k, v in properties.items()}
        self._cache: dict[Any, list[Issue]] = {}
        self.rule_list = rule_checks(self.rules)

    @property
    def per_field(self) -> bool:
        """Whether parameters are validated one by one (so `check_fields` may skip constant ones)."""
        return self._whole is None

    def check(self, request: Mapping[str, Any]) -> list[Issue]:
        """Every Issue with `request` (schema first, then the model's rules), in a stable order."""
        issues = self.check_required(request)
        issues.extend(self.check_fields(request, request))
        return merge_issues(issues, self.check_rules(request))

    def check_required(self, request: Mapping[str, Any]) -> list[Issue]:
        """The schema's required parameters that `request` lacks."""
        if self._whole is not None:
            return []
        return [Issue((name,), "Field required", keyword="required") for name in self._required if name not in request]

    def check_fields(self, request: Mapping[str, Any], names: Iterable[str]) -> list[Issue]:
        """Schema issues of the parameters `names` of `request` (all of them if not `per_field`)."""
        if self._whole is not None:
            return self._check_whole(request)
        issues: list[Issue] = []
        cache = self._cache
        for name in names:
            value = request[name]
            key = _cache_key(name, value)
            found = cache.get(key) if key is not None else None
            if found is None:
                found = self._check_value(name, value)
                if key is not None and len(cache) < _CACHE_LIMIT:
                    cache[key] = found
            if found:
                issues.extend(found)
        return issues

    def _check_value(self, name: str, value: Any) -> list[Issue]:
        surely_valid = self._fast.get(name)
        if surely_valid is not None and surely_valid(value):
            return []
        validator = self._props.get(name)
        if validator is None:
            return []
        return _schema_issues(validator, value, (name,))

    def check_rules(self, request: Mapping[str, Any], rules: Iterable[Rule] | None = None) -> list[Issue]:
        """Issues with the model's documented rules (MODEL_RULES); only `rules` of them if given."""
        issues: list[Issue] = []
        view = _Request(request)
        for rule in self.rule_list if rules is None else rules:
            rule.check(view, self.rules, issues)
        return issues

    def _check_whole(self, request: Mapping[str, Any]) -> list[Issue]:
        key = json.dumps(request, sort_keys=True, default=str)
        found = self._cache.get(key)
        if found is None and self._whole is not None:
            found = self._cache[key] = _schema_issues(self._whole, request, ())
        return list(found or ())


def _default_duration(properties: Mapping[str, Any], fallback: int) -> int:
    duration = properties.get("duration")
    default = duration.get("default") if isinstance(duration, Mapping) else None
    return default if type(default) is int else fallback


def _schema_issues(validator: Draft202012Validator, value: Any, prefix: PathTuple) -> list[Issue]:
    """The schema's issues with `value`; an Issue too when jsonschema itself fails on it."""
    try:
        errors = list(validator.iter_errors(value))
    except Exception as exc:  # from_api's checks make this unreachable; still, never crash a plan
        message = (
            f"cannot be checked against the model's request schema (jsonschema failed: {type(exc).__name__})"
        )
        return [Issue(prefix, message, "the model's registry schema may be broken: try again later")]
    errors.sort(key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    return [_issue(e, prefix) for e in errors]


def _issue(error: jsonschema.ValidationError, prefix: PathTuple) -> Issue:
    return Issue((*prefix, *error.absolute_path), describe_error(error), keyword=str(error.validator))


def validate_request(request: Mapping[str, Any], spec: ModelSpec) -> list[tuple[str, str]]:
    """(field path, message) for everything wrong with `request` for the model `spec`."""
    validator = RequestValidator(spec)
    issues = validator.check(request)
    if validator.schema_error:
        issues.insert(0, Issue((), validator.schema_error))
    return [(format_path(i.path), i.message) for i in issues]

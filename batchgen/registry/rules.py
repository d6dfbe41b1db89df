"""A model's documented rules, which its registry schema cannot express: the one file to edit to add them.

`MODEL_RULES` (keyed by model id) switches the rule checks on for a model; `rule_checks` turns a
`ModelRules` into the checks the validator runs on every request, each producing `Issue`s.

To support a new model:

1. Ship its registry answer as `batchgen/data/models/<model id>.json` (the object
   `GET /api/ai/models/{id}` returns, with `"x-batchgen-snapshot": "<date>"`), so plans work offline.
   That alone gives schema validation and the quote.
2. If its documentation states rules the registry schema omits (prompt xor multi_prompt, duration
   ranges, image caps, parameters missing from the schema, ...), add a `ModelRules(...)` entry to
   `MODEL_RULES` below, citing the documentation, and any documented defaults the service may echo
   to `DOCUMENTED_DEFAULTS`.
3. A rule no `ModelRules` field covers needs a new field, a `_check_*` function (appending `Issue`s
   with the documented message) and one line in `rule_checks`, naming the top-level fields whose
   *values* it reads (see `Rule`).
4. Add its cases to `tests/plan/test_schema.py` (like `test_omni_rules`; `test_rules_are_keyed_by_model_id`
   lists the models with rules). The emulator keeps its own copy of the rules on purpose
   (`batchgen/emulator/rules.py`, sharing no code): update it too for end-to-end tests to see them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from batchgen.manifest.model import ASSET_PLACEHOLDER_PREFIX
from batchgen.registry.spec import ModelSpec
from batchgen.wording import URL_EXPECTED, describe_value

__all__ = [
    "DOCUMENTED_DEFAULTS",
    "GENERIC_PARAMETERS",
    "MODEL_RULES",
    "NO_RULES",
    "Issue",
    "ModelRules",
    "PathTuple",
    "RequestView",
    "Rule",
    "echoable_defaults",
    "is_reference_url",
    "rule_checks",
    "total_duration",
]

PathTuple = tuple[str | int, ...]

# ---------------------------------------------------------------- the rules, per model

#: Parameters the queue itself accepts for every model (docs/api-contract.md §1, "Enqueue").
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
    # docs/api-contract.md §6.3 (from the walkthrough WT and VG): the documented rules and error strings.
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
    # docs/api-contract.md §6.4: prompt required and duration 3-15 (both in its schema); no multi_prompt.
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
    "kling-video-o3-pro-reference-to-video": {
        "duration": 5,
        "negative_prompt": "blur, distort, and low quality",
    },
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


# ---------------------------------------------------------------- the checks


class Issue(NamedTuple):
    """One thing wrong with a request: where (a path inside the request), what, and how to fix it."""

    path: PathTuple
    message: str
    hint: str | None = None
    keyword: str | None = None  # the JSON Schema keyword that failed (schema issues only)


# The documented error strings (docs/api-contract.md §6.3), without the "422 - Value error, " envelope.
_BOTH = "Cannot provide both 'prompt' and 'multi_prompt'."
_NEITHER = "Either 'prompt' or 'multi_prompt' must be provided."


def _shot_range_message(low: int, high: int) -> str:
    values = [f"'{n}'" for n in range(low, high + 1)]
    return "Input should be " + ", ".join(values[:-1]) + " or " + values[-1]


class RequestView:
    """The parts of a request the rules look at, each extracted once (the rules run per job)."""

    __slots__ = ("elements", "get", "images", "request", "shots")

    def __init__(self, request: Mapping[str, Any]) -> None:
        self.request = request
        self.get = request.get
        shots = request.get("multi_prompt")
        # (index, item) of the mappings only: the index names the item in the request, whatever precedes it
        self.shots = [(i, s) for i, s in enumerate(shots) if type(s) is dict] if type(shots) is list else []
        elements = request.get("elements")
        self.elements = (
            [(i, e) for i, e in enumerate(elements) if type(e) is dict] if type(elements) is list else []
        )
        images = request.get("input_image")
        self.images = images if type(images) is list else []


RuleCheck = Callable[[RequestView, ModelRules, list[Issue]], None]


def _check_prompt_choice(r: RequestView, rules: ModelRules, out: list[Issue]) -> None:
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


def _check_prompt_length(r: RequestView, rules: ModelRules, out: list[Issue]) -> None:
    limit = rules.max_prompt_chars or 0
    shots = [(("multi_prompt", i, "prompt"), shot.get("prompt")) for i, shot in r.shots]
    for path, text in [(("prompt",), r.get("prompt")), *shots]:
        if type(text) is str and len(text) > limit:
            out.append(Issue(path, f"is {len(text)} characters long; at most {limit} are allowed"))


def _check_shots(r: RequestView, rules: ModelRules, out: list[Issue]) -> None:
    low, high = rules.shot_duration_s or (1, 15)
    for i, shot in r.shots:
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


def _check_total_duration(r: RequestView, rules: ModelRules, out: list[Issue]) -> None:
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


def _count_images(r: RequestView) -> int:
    count = len(r.images)
    for _, element in r.elements:
        count += element.get("frontal_image_url") is not None
        refs = element.get("reference_image_urls")
        count += len(refs) if type(refs) is list else 0
    return count


def _check_images(r: RequestView, rules: ModelRules, out: list[Issue]) -> None:
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


def _check_elements(r: RequestView, rules: ModelRules, out: list[Issue]) -> None:
    limit = rules.max_reference_images_per_element or 0
    for i, element in r.elements:
        if element.get("frontal_image_url") is None:
            out.append(
                Issue(("elements", i, "frontal_image_url"), "Field required", "every element needs one")
            )
        refs = element.get("reference_image_urls")
        if type(refs) is list and len(refs) > limit:
            message = f"has {len(refs)} images; at most {limit} reference images per element"
            out.append(Issue(("elements", i, "reference_image_urls"), message))


def _check_tail(r: RequestView, rules: ModelRules, out: list[Issue]) -> None:
    if r.get("tail_image_url") is not None and r.get("start_image_url") is None:
        out.append(
            Issue(
                ("tail_image_url",), "requires start_image_url", "set start_image_url (the first frame) too"
            )
        )


def _check_image_urls(r: RequestView, rules: ModelRules, out: list[Issue]) -> None:
    for i, url in enumerate(r.images):
        _check_url(("input_image", i), url, out)
    for i, element in r.elements:
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


# ---------------------------------------------------------------- what may be sent as a URL


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

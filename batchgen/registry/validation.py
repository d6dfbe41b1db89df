"""Validating requests before anything is sent: a model's registry schema plus its documented rules.

`validate_request` checks one request body against (1) the model's registry `request_schema`
(OpenAPI-flavoured JSON Schema, normalised to draft 2020-12; unknown keys are never rejected) and
(2) the model's documented rules (`MODEL_RULES` in `batchgen.registry.rules`), which the registry
schema cannot express: prompt xor multi_prompt, duration ranges, the image cap, and so on.

`RequestValidator` is the compiled form used by the planner: each top-level parameter is validated
by its own sub-schema and the result is cached per distinct value, so 100,000 requests that share a
handful of distinct values cost a handful of jsonschema runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

from batchgen.registry.hardening import normalise_schema
from batchgen.registry.rules import (
    GENERIC_PARAMETERS,
    MODEL_RULES,
    NO_RULES,
    Issue,
    PathTuple,
    RequestView,
    Rule,
    is_reference_url,
    rule_checks,
)
from batchgen.registry.spec import ModelSpec
from batchgen.wording import describe_error, format_path

__all__ = [
    "Issue",
    "Predicate",
    "RequestValidator",
    "fast_predicate",
    "merge_issues",
    "validate_request",
]

_FORMATS = FormatChecker(formats=())
_FORMATS.checks("uri")(is_reference_url)

_DECOMPOSABLE = frozenset(
    {"type", "title", "description", "properties", "required", "basic", "nullable", "$schema", "default"}
)


def _decomposable(schema: Mapping[str, Any]) -> bool:
    extra = {k for k in schema if k not in _DECOMPOSABLE and not k.startswith("x-")}
    return not extra and schema.get("type", "object") in ("object", ["object"])


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
    if not tests:  # {} (or annotations only): every value is accepted
        return lambda v: True
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
    return lambda v: type(v) is not list or all(map(test, v))


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


# ---------------------------------------------------------------- the validator

_CACHE_LIMIT = 20_000  # distinct values remembered per model (unique prompts would grow it forever)


def _cache_key(name: str, value: Any) -> Any:
    """A hashable key for a value: scalars (with their type: 1, 1.0 and True are equal in Python) and
    lists of strings such as image URLs; None for anything else (shots, elements), which is not cached."""
    kind = type(value)
    if kind is list:
        return (name, list, tuple(value)) if all(type(item) is str for item in value) else None
    return None if kind is dict else (name, kind, value)


#: Schema keywords whose failures a documented rule restates with a better message (counts, presence).
_RESTATED_BY_RULES = frozenset(
    {"required", "maxItems", "minItems", "maxLength", "minLength", "maximum", "minimum"}
)


def merge_issues(schema_issues: list[Issue], rule_issues: list[Issue]) -> list[Issue]:
    """Both lists, minus the schema issues a documented rule already explains at the same place or
    deeper (a live schema may check a count or a presence that a rule also checks; the rule's message
    says more). Type and enum errors are always kept."""
    rule_paths = [issue.path for issue in rule_issues]
    kept = [
        issue
        for issue in schema_issues
        if issue.keyword not in _RESTATED_BY_RULES
        or not any(path[: len(issue.path)] == issue.path for path in rule_paths)
    ]
    return [*kept, *rule_issues]


class RequestValidator:
    """A model's schema and rules, compiled once; `check(request)` returns every Issue found."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.rules = MODEL_RULES.get(spec.id, NO_RULES)
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
        return [
            Issue((name,), "Field required", keyword="required")
            for name in self._required
            if name not in request
        ]

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
        view = RequestView(request)
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

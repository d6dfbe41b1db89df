"""`Manifest` -> ordered `Job`s: expansion, strict templates, canonical requests, keys, paths, checks.

Pure and deterministic: no network, no clock, no randomness; the same manifest and catalog always
give the same plan. `build_plan` raises one ManifestError listing every problem it found.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import product
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from batchgen.errors import ManifestError, Problem
from batchgen.manifest import (
    ASSET_PLACEHOLDER_PREFIX,
    JOB_SETTINGS,
    Asset,
    JobSpec,
    LocalAsset,
    Location,
    Manifest,
    UrlAsset,
)
from batchgen.paths import (
    DEFAULT_PATTERN,
    EXTENSIONS,
    KEY_CHARS,
    OutputPattern,
    PathRegistry,
    PatternError,
    check_relative,
    sanitise,
)
from batchgen.registry.catalog import ModelCatalog, known_model_ids
from batchgen.registry.pricing import format_usd, quote
from batchgen.registry.rules import Issue, Rule, echoable_defaults, total_duration
from batchgen.registry.spec import ModelSpec
from batchgen.registry.validation import RequestValidator, merge_issues
from batchgen.templates import AssetRef, TemplateSyntaxError, Var, parse_template
from batchgen.wording import did_you_mean, format_path

__all__ = [
    "MAX_JOBS",
    "Job",
    "LocalAsset",
    "Location",
    "Plan",
    "build_plan",
    "canonical_json",
    "format_plan",
    "job_key",
    "plan_to_json",
    "resolve_request",
]

PathTuple = tuple[str | int, ...]
Vars = dict[str, Any]
#: A manifest may expand to at most this many jobs.
MAX_JOBS = 1_000_000
_REQUEST_BUILTINS = ("name", "replica", "index", "model")
#: Parameter names of other APIs that people carry over by mistake -> what Oxen calls them.
_LIKELY_MISTAKES = {
    "end_image_url": "tail_image_url",
    "image_urls": "input_image",
    "image_url": "input_image",
}


@dataclass(frozen=True, slots=True)
class Job:
    """One generation to run: the exact request, its key, where its result goes, what it costs."""

    key: str  # sha256 hex of the canonical {"model", "request", "replica"}
    index: int  # position in plan order, from 0
    name: str  # the job spec's name
    replica: int
    model: str
    media_type: str  # "video" | "image"
    request: Mapping[str, Any]  # exactly the JSON body to POST (local assets as placeholders); do not mutate
    output_path: str  # relative POSIX path under the run's videos/ directory
    vars: Mapping[str, Any]  # the user variables of this expansion (built-ins are fields above)
    assets: tuple[LocalAsset, ...]  # local assets the request needs uploaded, in first-use order
    location: Location  # the job spec's `- name:` line
    cost_usd: Decimal | None
    duration_s: int | None


@dataclass(frozen=True, slots=True)
class Plan:
    """Every job of a manifest, in plan order, and the total quote (None if any job has no quote)."""

    manifest_path: Path
    name: str
    jobs: tuple[Job, ...]
    total_cost_usd: Decimal | None
    #: per model: parameter defaults the service may fill in and echo (see registry.echoable_defaults)
    model_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def count_by_model(self) -> dict[str, int]:
        """Jobs per model, in order of first appearance."""
        return _count(job.model for job in self.jobs)

    def count_by_aspect_ratio(self) -> dict[str, int]:
        """Jobs per requested aspect ratio ("model default" when the request sets none)."""
        return _count(str(job.request.get("aspect_ratio", "model default")) for job in self.jobs)

    def cost_of(self, jobs: tuple[Job, ...] | list[Job]) -> Decimal | None:
        """The summed quote of `jobs` (None if any of them has none)."""
        total = Decimal(0)
        for job in jobs:
            if job.cost_usd is None:
                return None
            total += job.cost_usd
        return total


def _count(items: Iterator[str] | Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encode: Callable[[Any], str] = _CANONICAL.encode
if c_make_encoder is not None:  # the C encoder, built once (JSONEncoder.encode builds one per call)
    _c_encoder = c_make_encoder(
        None, _CANONICAL.default, encode_basestring, None, ":", ",", True, False, False
    )

    def _encode(obj: Any) -> str:
        return "".join(_c_encoder(obj, 0))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys, no whitespace, non-ASCII kept, NaN refused: the form keys are hashed in."""
    return _encode(obj)


def job_key(model: str, request: Mapping[str, Any], replica: int) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no whitespace, UTF-8) of model, request, replica."""
    canonical = _encode({"model": model, "replica": replica, "request": request})
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def resolve_request(request: Mapping[str, Any], asset_urls: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `request` with every asset placeholder replaced by `asset_urls[sha256 hex]`.

    Raises RuntimeError when a placeholder has no URL (the runner must upload every job asset first).
    """
    return {k: _resolve(v, asset_urls) for k, v in request.items()}


def _resolve(value: Any, urls: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if not value.startswith(ASSET_PLACEHOLDER_PREFIX):
            return value
        digest = value[len(ASSET_PLACEHOLDER_PREFIX) :]
        if digest not in urls:
            raise RuntimeError(f"no URL for local asset sha256:{digest}; upload it before sending")
        return urls[digest]
    if isinstance(value, Mapping):
        return {k: _resolve(v, urls) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, urls) for v in value]
    return value


# ---------------------------------------------------------------- compiling templated values


class _RenderError(Exception):
    """A template that only fails for some values (e.g. `{asset:$v}` where v names no asset)."""

    def __init__(self, source: PathTuple, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.message = message
        self.hint = hint


Renderer = Callable[[Vars], Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A value whose result is `value` (constant) or `render(vars)` (dynamic)."""

    value: Any = None
    render: Renderer | None = None


class _Compiler:
    """Compiles the templated values of one job spec against its known variables and the assets."""

    def __init__(self, planner: _Planner, spec: JobSpec, var_names: frozenset[str]) -> None:
        self.planner = planner
        self.spec = spec
        self.var_names = var_names
        self.assets = planner.manifest.assets
        self.asset_fields: dict[str, None] = {}  # top-level request fields holding asset references
        self.field = ""  # the top-level request field being compiled
        self.dynamic_fields: tuple[str, ...] = ()  # top-level request fields that hold templates
        self.failed = False

    def problem(
        self, source: PathTuple, message: str, hint: str | None = None, *, per_spec: bool = False
    ) -> None:
        """Record a problem; `per_spec` ones in shared fields (defaults) name the job spec they fail for."""
        self.failed = True
        if per_spec and source[:2] != ("jobs", self.spec.index):
            message += f" (for job '{self.spec.name}')"
        self.planner.static_problem(source, message, hint)

    def compile(self, value: Any, source: PathTuple) -> _Compiled:
        if isinstance(value, str):
            return self._string(value, source)
        if isinstance(value, dict):
            return self._dict(value, source)
        if isinstance(value, list):
            return self._list(value, source)
        return _Compiled(value)

    def compile_request(
        self, model: _Compiled, fields: dict[str, Any], sources: dict[str, PathTuple]
    ) -> _Compiled:
        """The request: the model first, then the fields, each compiled where it was written."""
        model_item = model if model.render is None else _Compiled(render=lambda v: v["model"])
        items = [("model", model_item)]
        for name, value in fields.items():
            self.field = name
            items.append((name, self.compile(value, sources[name])))
        self.dynamic_fields = tuple(name for name, c in items[1:] if c.render is not None)
        return _combine(items)

    def _dict(self, value: dict[str, Any], source: PathTuple) -> _Compiled:
        return _combine([(k, self.compile(v, (*source, k))) for k, v in value.items()])

    def _list(self, value: list[Any], source: PathTuple) -> _Compiled:
        items = [self.compile(v, (*source, i)) for i, v in enumerate(value)]
        if all(c.render is None for c in items):
            return _Compiled([c.value for c in items])
        pairs = [(c.render, c.value) for c in items]
        return _Compiled(render=lambda v: [fn(v) if fn is not None else const for fn, const in pairs])

    def _string(self, text: str, source: PathTuple) -> _Compiled:
        try:
            template = parse_template(text)
        except TemplateSyntaxError as exc:
            self.problem(source, exc.message)
            return _Compiled(text)
        if template.is_constant:
            return _Compiled(template.text)
        if not self._check_names(template, source):
            return _Compiled(text)
        single = template.single
        if isinstance(single, Var):
            name = single.name
            return _Compiled(render=lambda v: v[name])
        if isinstance(single, AssetRef):
            return self._whole_asset(single, source)
        return self._joined(template.parts, source)

    def _check_names(self, template: Any, source: PathTuple) -> bool:
        ok = True
        for name in template.var_names():
            if name not in self.var_names:
                ok = False
                known = sorted(self.var_names)
                hint = did_you_mean(name, known) or "known variables: " + ", ".join(known)
                self.problem(source, f"unknown variable '{name}'", hint, per_spec=True)
        for part in template.parts:
            if isinstance(part, AssetRef):
                self.asset_fields[self.field] = None
                if not part.via_var:
                    ok = self._check_literal_asset(part.name, template, source) and ok
        return ok

    def _check_literal_asset(self, name: str, template: Any, source: PathTuple) -> bool:
        asset = self.assets.get(name)
        if asset is None:
            hint = did_you_mean(name, self.assets) or "define it under `assets:`"
            self.problem(source, f"unknown asset '{name}'", hint)
            return False
        if isinstance(asset, LocalAsset) and template.single is None:
            self.problem(source, *_embedded_local(name))
            return False
        return True

    def _whole_asset(self, ref: AssetRef, source: PathTuple) -> _Compiled:
        if not ref.via_var:
            return _Compiled(_asset_value(self.assets[ref.name]))
        var, assets = ref.name, self.assets
        return _Compiled(render=lambda v: _asset_value(_asset_by_var(assets, var, v[var], source)))

    def _joined(self, parts: tuple[Any, ...], source: PathTuple) -> _Compiled:
        if not any(isinstance(p, AssetRef) and p.via_var for p in parts):
            fmt = "".join(_format_piece(p, self.assets) for p in parts)
            return _Compiled(render=lambda v: fmt.format_map(v))
        assets = self.assets

        def render(v: Vars) -> str:
            out = []
            for part in parts:
                if isinstance(part, str):
                    out.append(part)
                elif isinstance(part, Var):
                    out.append(str(v[part.name]))
                else:
                    out.append(_embedded_url(assets, part, v, source))
            return "".join(out)

        return _Compiled(render=render)


def _combine(items: list[tuple[str, _Compiled]]) -> _Compiled:
    """A mapping of compiled values: constant if all are, else a renderer filling the dynamic ones."""
    dynamic = [(k, c.render) for k, c in items if c.render is not None]
    if not dynamic:
        return _Compiled({k: c.value for k, c in items})
    base = {k: c.value for k, c in items}

    def render(v: Vars) -> Any:
        out = dict(base)
        for k, fn in dynamic:
            out[k] = fn(v)
        return out

    return _Compiled(render=render)


def _format_piece(part: Any, assets: Mapping[str, Asset]) -> str:
    if isinstance(part, str):
        return part.replace("{", "{{").replace("}", "}}")
    if isinstance(part, Var):
        return "{" + part.name + "}"
    return _asset_value(assets[part.name]).replace("{", "{{").replace("}", "}}")


def _asset_value(asset: Asset) -> str:
    return asset.url if isinstance(asset, UrlAsset) else asset.placeholder


def _embedded_local(name: str) -> tuple[str, str]:
    return (
        f"local asset '{name}' cannot be part of a longer string",
        "a local file becomes a URL only after upload: write the reference as the whole value",
    )


def _asset_by_var(assets: Mapping[str, Asset], var: str, value: Any, source: PathTuple) -> Asset:
    asset = assets.get(value) if isinstance(value, str) else None
    if asset is None:
        hint = did_you_mean(str(value), assets) or "assets: " + (", ".join(assets) or "(none defined)")
        raise _RenderError(source, f"variable '{var}' is {json.dumps(value)}, which names no asset", hint)
    return asset


def _embedded_url(assets: Mapping[str, Asset], ref: AssetRef, v: Vars, source: PathTuple) -> str:
    asset = _asset_by_var(assets, ref.name, v[ref.name], source)
    if isinstance(asset, LocalAsset):
        raise _RenderError(source, *_embedded_local(asset.name))
    return asset.url


# ---------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class _Model:
    spec: ModelSpec
    validator: RequestValidator
    extension: str


@dataclass(slots=True)
class _Finding:
    """Problems of one kind from many expanded jobs of one spec, reported once with a count."""

    spec: JobSpec
    replica: int
    location: Location
    field: str
    message: str
    hint: str | None
    count: int = 1

    def problem(self) -> Problem:
        who = f"replica {self.replica}" if self.count == 1 else f"{self.count} jobs"
        field = f"jobs[{self.spec.index}] ({self.spec.name}, {who})" + (
            f": {self.field}" if self.field else ""
        )
        return Problem(
            self.location.file, self.location.line, self.location.column, field, self.message, self.hint
        )


# ---------------------------------------------------------------- the planner


@dataclass(slots=True)
class _SpecPlan:
    """What is fixed for every expansion of one job spec."""

    spec: JobSpec
    model: _Compiled
    request: _Compiled
    sources: dict[str, PathTuple]  # request field -> where in the manifest it was written
    pattern_sources: tuple[tuple[str, str], ...]  # pattern name -> "var" | "request" | "key"
    asset_fields: tuple[str, ...]
    dynamic_fields: tuple[str, ...]
    const_fields: tuple[str, ...]
    fixed_duration: bool  # the model and the fields a duration is read from are the same in every job
    duration_s: int | None = None  # that duration, once the first job has computed it
    duration_known: bool = False


class _Planner:
    """Plans job specs one after another, collecting problems instead of stopping at the first."""

    def __init__(self, manifest: Manifest, catalog: ModelCatalog) -> None:
        self.manifest = manifest
        self.catalog = catalog
        self.problems: dict[Problem, None] = {}
        self.findings: dict[tuple[Any, ...], _Finding] = {}
        self.jobs: list[Job] = []
        self.index = 0
        self.keys: dict[str, Job] = {}
        self.spec_of: dict[str, int] = {}  # job key -> job spec index
        self.paths: PathRegistry[Job] = PathRegistry()
        self.models: dict[str, _Model | None] = {}
        self.checked_params: set[tuple[int, str]] = set()
        self.once: dict[tuple[int, str], tuple[list[Issue], list[Issue], tuple[Rule, ...]]] = {}
        self.costs: dict[tuple[str, int | None, bool], Decimal | None] = {}
        self.by_sha = {a.sha256: a for a in manifest.assets.values() if isinstance(a, LocalAsset)}
        self.pattern = self._compile_pattern()

    # -- problems

    def static_problem(
        self, source: PathTuple, message: str, hint: str | None = None, *, key: bool = False
    ) -> None:
        where = self.manifest.positions.at(source, key=key)
        self.problems[Problem(where.file, where.line, where.column, format_path(source), message, hint)] = (
            None
        )

    def finding(
        self,
        spec: JobSpec,
        replica: int,
        where: Location,
        field: str,
        message: str,
        hint: str | None,
        group: Any,
    ) -> None:
        """Record one per-job problem; those with the same `group` in one spec are reported once."""
        found = self.findings.get((spec.index, group))
        if found is None:
            self.findings[(spec.index, group)] = _Finding(spec, replica, where, field, message, hint)
        else:
            found.count += 1

    def all_problems(self) -> list[Problem]:
        """Every problem, in manifest order (ties keep the order they were found in)."""
        found = [*self.problems, *(f.problem() for f in self.findings.values())]
        return sorted(found, key=lambda p: (p.file != self.manifest.file, p.line or 0, p.column or 0))

    # -- setup

    def _compile_pattern(self) -> OutputPattern | None:
        text = self.manifest.output_pattern or DEFAULT_PATTERN
        try:
            return OutputPattern.compile(text)
        except PatternError as exc:
            self.static_problem(("output", "pattern"), str(exc))
            return None

    def model(self, model_id: str, source: PathTuple) -> _Model | None:
        if model_id in self.models:
            return self.models[model_id]
        spec = self.catalog.get(model_id)
        found = None
        if spec is None:
            hint = did_you_mean(model_id, known_model_ids(self.catalog), cutoff=0.5)
            self.static_problem(source, f"unknown model '{model_id}'", hint or "check the model id")
        elif spec.media_type not in EXTENSIONS:
            self.static_problem(
                source, f"'{model_id}' is a text model; batchgen runs image and video models only"
            )
        else:
            found = _Model(spec, RequestValidator(spec), EXTENSIONS[spec.media_type])
            if found.validator.schema_error:
                self.static_problem(source, found.validator.schema_error)
        self.models[model_id] = found
        return found

    # -- one spec

    def plan_spec(self, spec: JobSpec) -> None:
        var_names = _var_names(self.manifest, spec)
        compiler = _Compiler(self, spec, var_names)
        model_compiler = _Compiler(self, spec, var_names - {"model"})
        model = model_compiler.compile(spec.model or self.manifest.model or "", _model_source(spec))
        fields, sources = _request_fields(self.manifest, spec)
        request = compiler.compile_request(model, fields, sources)
        pattern_sources = self._pattern_sources(spec, var_names, fields)
        if compiler.failed or model_compiler.failed or pattern_sources is None:
            return
        size = _expansion_size(self.manifest, spec)
        if self.index + size > MAX_JOBS:
            self.static_problem(
                ("jobs", spec.index), f"expands to {size} jobs; a plan may have at most {MAX_JOBS}"
            )
            return
        dynamic = compiler.dynamic_fields
        const = tuple(name for name in fields if name not in dynamic)
        asset_fields = tuple(compiler.asset_fields)
        fixed = model.render is None and not {"multi_prompt", "duration"} & set(dynamic)
        plan = _SpecPlan(spec, model, request, sources, pattern_sources, asset_fields, dynamic, const, fixed)
        for base, replica in _expansions(self.manifest, spec):
            self._plan_job(plan, base, replica)

    def _pattern_sources(
        self, spec: JobSpec, var_names: frozenset[str], fields: dict[str, Any]
    ) -> tuple[tuple[str, str], ...] | None:
        if self.pattern is None:
            return None
        out: list[tuple[str, str]] = []
        for name in self.pattern.names():
            if name in var_names:
                out.append((name, "var"))
            elif name == "key":
                out.append((name, "key"))
            elif name in fields and not isinstance(fields[name], dict | list):
                out.append((name, "request"))
            else:
                self._pattern_name_problem(spec, name, var_names, fields)
                return None
        return tuple(out)

    def _pattern_name_problem(
        self, spec: JobSpec, name: str, names: frozenset[str], fields: dict[str, Any]
    ) -> None:
        if name in fields:
            kind = "list" if isinstance(fields[name], list) else "mapping"
            message = (
                f"'{name}' is a {kind}; only single values can be used in file names (for job '{spec.name}')"
            )
            self.static_problem(("output", "pattern"), message)
            return
        known = sorted(names | {"key"} | {k for k, v in fields.items() if not isinstance(v, dict | list)})
        hint = did_you_mean(name, known) or "known fields: " + ", ".join(known)
        self.static_problem(("output", "pattern"), f"unknown field '{name}' (for job '{spec.name}')", hint)

    # -- one job

    def _plan_job(self, plan: _SpecPlan, base: Vars, replica: int) -> None:
        spec = plan.spec
        v = {**base, "name": spec.name, "replica": replica, "index": self.index}
        self.index += 1
        try:
            model_id = plan.model.value if plan.model.render is None else str(plan.model.render(v))
            model = self._job_model(plan, model_id)
            v["model"] = model_id
            request = plan.request.value if plan.request.render is None else plan.request.render(v)
        except _RenderError as exc:
            where = self.manifest.positions.at(exc.source)
            field = format_path(_request_path(exc.source))
            self.finding(spec, replica, where, field, exc.message, exc.hint, (field, exc.message))
            return
        if model is not None:
            self._finish_job(plan, model, request, base, v)

    def _job_model(self, plan: _SpecPlan, model_id: str) -> _Model | None:
        spec = plan.spec
        model = self.model(model_id, _model_source(spec))
        if model is not None and (spec.index, model.spec.id) not in self.checked_params:
            self.checked_params.add((spec.index, model.spec.id))
            self._check_parameters(plan, model)
        return model

    def _check_parameters(self, plan: _SpecPlan, model: _Model) -> None:
        """Flag parameters the model does not know that look like typos (others pass through)."""
        known = model.validator.known_parameters
        for name, source in plan.sources.items():
            if name in known:
                continue
            suggestion = _LIKELY_MISTAKES.get(name)
            hint = (
                f"did you mean '{suggestion}'?"
                if suggestion
                else did_you_mean(name, known | JOB_SETTINGS, 0.8)
            )
            if hint:
                message = f"unknown parameter '{name}' for {model.spec.id}"
                self.static_problem(
                    source, message, hint + " (unknown parameters are sent as written)", key=True
                )

    def _finish_job(
        self, plan: _SpecPlan, model: _Model, request: dict[str, Any], base: Vars, v: Vars
    ) -> None:
        issues = self._validate(plan, model, request)
        if issues:
            for issue in issues:
                self._issue_finding(plan, v["replica"], issue)
            return
        key = job_key(model.spec.id, request, v["replica"])
        output = self._output_path(plan, model, request, v, key)
        if output is None:
            return
        job = self._make_job(plan, model, request, base, v, key, output)
        if self._claim(plan, job):
            self.jobs.append(job)
            self.spec_of[job.key] = plan.spec.index

    def _validate(self, plan: _SpecPlan, model: _Model, request: dict[str, Any]) -> list[Issue]:
        """All issues of `request`. What cannot vary between a spec's jobs is checked once per spec+model:
        constant fields, the required keys, and the rules that read no templated field's value."""
        validator = model.validator
        if not validator.per_field:
            return validator.check(request)
        key = (plan.spec.index, model.spec.id)
        known = self.once.get(key)
        if known is None:
            dynamic = set(plan.dynamic_fields)
            per_job = tuple(rule for rule in validator.rule_list if rule.values & dynamic)
            once = [rule for rule in validator.rule_list if rule not in per_job]
            schema_issues = validator.check_required(request) + validator.check_fields(request, plan.const_fields)
            known = self.once[key] = (schema_issues, validator.check_rules(request, once), per_job)
        schema_issues, rule_issues, per_job = known
        dynamic_issues = validator.check_fields(request, plan.dynamic_fields)
        return merge_issues([*schema_issues, *dynamic_issues], [*rule_issues, *validator.check_rules(request, per_job)])

    def _issue_finding(self, plan: _SpecPlan, replica: int, issue: Issue) -> None:
        top = issue.path[0] if issue.path else None
        source = plan.sources.get(top) if isinstance(top, str) else None
        if source is None:
            where = plan.spec.location
        else:
            where = self.manifest.positions.at((*source, *issue.path[1:]))
        field = format_path(issue.path)
        self.finding(plan.spec, replica, where, field, issue.message, issue.hint, (field, issue.message))

    def _output_path(
        self, plan: _SpecPlan, model: _Model, request: dict[str, Any], v: Vars, key: str
    ) -> str | None:
        pattern = self.pattern
        assert pattern is not None  # plan_spec stops early without a pattern
        written = pattern.extension
        if written is not None and written.lower() != model.extension:
            media = model.spec.media_type
            message = f"ends in '{written}', but {model.spec.id} makes {media}s: use {model.extension} or no extension"
            self.static_problem(("output", "pattern"), message)
            return None
        safe = {}
        for name, kind in plan.pattern_sources:
            if kind == "key":
                safe[name] = key[:KEY_CHARS]
            else:
                safe[name] = sanitise(v[name] if kind == "var" else request[name])
        path = pattern.render_safe(safe, model.extension)
        problem = check_relative(path)
        if problem:
            message = f"{path!r} {problem}"
            self.finding(
                plan.spec, v["replica"], self._pattern_location(plan), "output path", message, None, problem
            )
            return None
        return path

    def _pattern_location(self, plan: _SpecPlan) -> Location:
        if self.manifest.output_pattern is None:
            return plan.spec.location
        return self.manifest.positions.at(("output", "pattern"))

    def _make_job(
        self,
        plan: _SpecPlan,
        model: _Model,
        request: dict[str, Any],
        base: Vars,
        v: Vars,
        key: str,
        output: str,
    ) -> Job:
        media = model.spec.media_type
        seconds = self._duration(plan, model, request) if media == "video" else None
        cost_key = (model.spec.id, seconds, request.get("generate_audio") is True)
        if cost_key not in self.costs:
            self.costs[cost_key] = quote(model.spec.pricing, request, seconds)
        return Job(
            key=key,
            index=v["index"],
            name=plan.spec.name,
            replica=v["replica"],
            model=model.spec.id,
            media_type=media,
            request=request,
            output_path=output,
            vars=base,
            assets=self._assets_of(request, plan.asset_fields) if plan.asset_fields else (),
            location=plan.spec.location,
            cost_usd=self.costs[cost_key],
            duration_s=seconds,
        )

    def _duration(self, plan: _SpecPlan, model: _Model, request: dict[str, Any]) -> int | None:
        if plan.duration_known:
            return plan.duration_s
        seconds = total_duration(request, model.validator.default_duration_s)
        if plan.fixed_duration:
            plan.duration_s, plan.duration_known = seconds, True
        return seconds

    def _assets_of(self, request: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[LocalAsset, ...]:
        strings: list[str] = []
        for name in fields:
            _collect_strings(request[name], strings)
        found: dict[str, LocalAsset] = {}
        for text in strings:
            if text.startswith(ASSET_PLACEHOLDER_PREFIX):
                asset = self.by_sha.get(text[len(ASSET_PLACEHOLDER_PREFIX) :])
                if asset is not None:
                    found.setdefault(asset.sha256, asset)
        return tuple(found.values())

    def _describe(self, job: Job, names: list[str], *, full: bool = True) -> str:
        values = [f"{k}={job.vars.get(k, '(unset)')}" for k in names[:4]]
        if full:
            values.insert(0, f"jobs[{self.spec_of[job.key]}] {job.name}, replica {job.replica}")
        return f"job #{job.index}" + (f" ({', '.join(values)})" if values else "")

    def _claim(self, plan: _SpecPlan, job: Job) -> bool:
        """Refuse a job whose key or output path an earlier job already has."""
        other = self.keys.get(job.key)
        if other is not None:
            names = _differing_vars(other, job)
            first, this = self._describe(other, names), self._describe(job, names, full=False)
            message = f"{this} sends the same request (same key) as {first}"
            group = ("key", self.spec_of[other.key])
            self.finding(plan.spec, job.replica, job.location, "", message, _duplicate_hint(names), group)
            return False
        owner = self.paths.claim(job.output_path, job)
        if owner is not None:
            names = _differing_vars(owner, job)
            first, this = self._describe(owner, names), self._describe(job, names, full=False)
            message = (
                f"{this} writes {job.output_path!r}, which clashes with {owner.output_path!r} of {first}"
            )
            hint = "output paths are compared ignoring case and extension; add {key} or a differing variable"
            where = self._pattern_location(plan)
            self.finding(plan.spec, job.replica, where, "", message, hint, ("path", self.spec_of[owner.key]))
            return False
        self.keys[job.key] = job
        return True


def _model_source(spec: JobSpec) -> PathTuple:
    return ("jobs", spec.index, "model") if spec.model is not None else ("model",)


# ---------------------------------------------------------------- expansion


def _var_names(manifest: Manifest, spec: JobSpec) -> frozenset[str]:
    names: set[str] = set(_REQUEST_BUILTINS)
    for source in (manifest.vars, manifest.matrix, spec.vars, spec.matrix):
        names.update(source)
    for rows in (manifest.rows, spec.rows):
        if rows is not None:
            names.update(rows.header)
    return frozenset(names)


def _request_fields(manifest: Manifest, spec: JobSpec) -> tuple[dict[str, Any], dict[str, PathTuple]]:
    """The spec's request fields before templating (model added later) and where each was written."""
    fields: dict[str, Any] = {}
    sources: dict[str, PathTuple] = {}
    if manifest.target_namespace is not None:
        fields["target_namespace"] = manifest.target_namespace
        sources["target_namespace"] = ("target_namespace",)
    for name, value in manifest.defaults.items():
        fields[name] = value
        sources[name] = ("defaults", name)
    for name, value in spec.fields.items():
        fields[name] = value
        sources[name] = ("jobs", spec.index, name)
    for name in [k for k, v in fields.items() if v is None]:  # `field: null` removes a default
        del fields[name], sources[name]
    return fields, sources


def _request_path(source: PathTuple) -> PathTuple:
    if source[:1] == ("defaults",):
        return source[1:]
    if source[:1] == ("jobs",):
        return source[2:]
    return source


def _combos(axes: Mapping[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in product(*axes.values())]


def _expansion_size(manifest: Manifest, spec: JobSpec) -> int:
    size = spec.repeat
    for rows in (manifest.rows, spec.rows):
        size *= len(rows.rows) if rows is not None else 1
    for axes in (manifest.matrix, spec.matrix):
        for values in axes.values():
            size *= len(values)
    return size


def _expansions(manifest: Manifest, spec: JobSpec) -> Iterator[tuple[Vars, int]]:
    """(user vars, replica) in plan order: rows (manifest x job), matrix (manifest then job axes), replica."""
    manifest_rows = manifest.rows.rows if manifest.rows is not None else ({},)
    job_rows = spec.rows.rows if spec.rows is not None else ({},)
    manifest_combos, job_combos = _combos(manifest.matrix), _combos(spec.matrix)
    for mrow in manifest_rows:
        for jrow in job_rows:
            for mc in manifest_combos:
                for jc in job_combos:
                    base = {**manifest.vars, **mc, **mrow, **spec.vars, **jc, **jrow}
                    for replica in range(spec.repeat):
                        yield base, replica


def _collect_strings(value: Any, into: list[str]) -> None:
    if type(value) is str:
        into.append(value)
    elif type(value) is dict:
        for item in value.values():
            _collect_strings(item, into)
    elif type(value) is list:
        for item in value:
            _collect_strings(item, into)


def _differing_vars(first: Job, second: Job) -> list[str]:
    names = first.vars.keys() | second.vars.keys()
    return sorted(k for k in names if first.vars.get(k) != second.vars.get(k))


def _duplicate_hint(differing: list[str]) -> str:
    if differing:
        return (
            f"the jobs differ only in variables no request field uses ({', '.join(differing)}): "
            "use them in a field, or remove them"
        )
    return "two jobs would send the identical request; use `repeat: N` for several generations of one request"


def build_plan(manifest: Manifest, catalog: ModelCatalog) -> Plan:
    """Expand, template, key, place, validate and quote every job; raise ManifestError with all problems."""
    planner = _Planner(manifest, catalog)
    collecting = gc.isenabled()
    gc.disable()  # planning allocates ~10 objects per job and frees none: cyclic GC passes are pure cost
    try:
        for spec in manifest.jobs:
            planner.plan_spec(spec)
    finally:
        if collecting:
            gc.enable()
    problems = planner.all_problems()
    if problems:
        raise ManifestError(problems)
    jobs = tuple(planner.jobs)
    plan = Plan(manifest.path, manifest.name, jobs, None)
    defaults = {model_id: echoable_defaults(model.spec) for model_id, model in planner.models.items() if model}
    return Plan(manifest.path, manifest.name, jobs, plan.cost_of(jobs), defaults)


# ---------------------------------------------------------------- output


def _job_json(job: Job) -> dict[str, Any]:
    return {
        "index": job.index,
        "key": job.key,
        "name": job.name,
        "replica": job.replica,
        "model": job.model,
        "media_type": job.media_type,
        "output_path": job.output_path,
        "duration_s": job.duration_s,
        "cost_usd": None if job.cost_usd is None else str(job.cost_usd),
        "vars": dict(job.vars),
        "request": job.request,
        "assets": [
            {
                "name": a.name,
                "sha256": a.sha256,
                "size": a.size,
                "media_type": a.media_type,
                "path": str(a.path),
            }
            for a in job.assets
        ],
        "location": {"file": job.location.file, "line": job.location.line, "column": job.location.column},
    }


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The whole plan as JSON-ready data, in plan order (for plan.json and `plan --json`)."""
    return {
        "format": "batchgen-plan/1",
        "name": plan.name,
        "manifest": str(plan.manifest_path),
        "job_count": len(plan.jobs),
        "total_cost_usd": None if plan.total_cost_usd is None else str(plan.total_cost_usd),
        "by_model": plan.count_by_model(),
        "by_aspect_ratio": plan.count_by_aspect_ratio(),
        "model_defaults": {model: dict(values) for model, values in plan.model_defaults.items()},
        "jobs": [_job_json(job) for job in plan.jobs],
    }


def format_plan(plan: Plan, *, done_keys: frozenset[str] = frozenset(), show_requests: int = 3) -> str:
    """The plan for humans: counts by model and aspect ratio, progress, the quote, the first requests."""
    left = [job for job in plan.jobs if job.key not in done_keys]
    done = len(plan.jobs) - len(left)
    lines = [
        f"Plan {plan.name!r} ({plan.manifest_path}): {len(plan.jobs)} jobs, {done} done, {len(left)} to run",
        "  by model:",
        *_table(plan.count_by_model()),
        "  by aspect ratio:",
        *_table(plan.count_by_aspect_ratio()),
        f"  cost quote: {format_usd(plan.total_cost_usd)} in total, {format_usd(plan.cost_of(left))} to go",
    ]
    shown = left[:show_requests]
    if shown:
        lines.append(f"First {len(shown)} request(s) to send:")
    for job in shown:
        lines.append(
            f"  #{job.index} {job.name} replica {job.replica} -> videos/{job.output_path}  key {job.key[:12]}"
        )
        body = json.dumps(job.request, indent=2, ensure_ascii=False)
        lines.extend("    " + line for line in body.splitlines())
    return "\n".join(lines)


def _table(counts: Mapping[str, int]) -> list[str]:
    width = max((len(k) for k in counts), default=0)
    return [f"    {name.ljust(width)}  {count}" for name, count in counts.items()]

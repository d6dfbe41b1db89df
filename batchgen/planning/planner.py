"""The planner: `Manifest` -> ordered `Job`s, each templated, keyed, placed, validated and quoted.

Pure and deterministic: no network, no clock, no randomness; the same manifest and catalog always
give the same plan. `build_plan` raises one ManifestError listing every problem it found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from batchgen.aio import no_gc_pauses
from batchgen.errors import ManifestError
from batchgen.manifest.load import sort_problems
from batchgen.manifest.model import (
    ASSET_PLACEHOLDER_PREFIX,
    JobSpec,
    LocalAsset,
    Location,
    Manifest,
    PathTuple,
)
from batchgen.planning.compiler import Compiled, Compiler, RenderError, collect_strings
from batchgen.planning.expansion import (
    MAX_JOBS,
    Vars,
    expansion_size,
    expansions,
    request_fields,
    request_path,
    variable_names,
)
from batchgen.planning.jobs import Job, Plan, titled
from batchgen.planning.keys import job_key
from batchgen.planning.paths import (
    DEFAULT_PATTERN,
    EXTENSIONS,
    KEY_CHARS,
    OutputPattern,
    PathRegistry,
    PatternError,
    check_relative,
    sanitise,
)
from batchgen.planning.problems import PlanProblems, differing_vars, duplicate_hint, parameter_typos
from batchgen.registry.catalog import ModelCatalog, SnapshotCatalog
from batchgen.registry.pricing import quote, quoted_options
from batchgen.registry.rules import Issue, Rule, echoable_defaults, total_duration
from batchgen.registry.spec import ModelSpec
from batchgen.registry.validation import RequestValidator, merge_issues
from batchgen.wording import did_you_mean, format_path

__all__ = ["build_plan"]


@dataclass(frozen=True, slots=True)
class _Model:
    spec: ModelSpec
    validator: RequestValidator
    extension: str


@dataclass(slots=True)
class _SpecPlan:
    """What is fixed for every expansion of one job spec."""

    spec: JobSpec
    model: Compiled
    request: Compiled
    sources: dict[str, PathTuple]  # request field -> where in the manifest it was written
    pattern_sources: tuple[tuple[str, str], ...] | None  # pattern name -> "var" | "request" | "key"
    asset_fields: tuple[str, ...]
    dynamic_fields: tuple[str, ...]
    const_fields: tuple[str, ...]
    fixed_duration: bool  # the model and the fields a duration is read from are the same in every job
    field_vars: Mapping[str, set[str]]  # top-level request field -> the variables it reads
    broken: frozenset[str]  # request fields whose templates failed: the rest is checked, nothing placed
    duration_s: int | None = None  # that duration, once the first job has computed it
    duration_known: bool = False


class _Planner(PlanProblems):
    """Plans job specs one after another, collecting problems instead of stopping at the first."""

    def __init__(self, manifest: Manifest, catalog: ModelCatalog) -> None:
        super().__init__(manifest)
        self.catalog = catalog
        self.jobs: list[Job] = []
        self.index = 0
        self.keys: dict[str, Job] = {}
        self.spec_of: dict[str, int] = {}  # job key -> job spec index
        self.paths: PathRegistry[Job] = PathRegistry()
        self.models: dict[str, _Model | None] = {}
        self.checked_params: set[tuple[int, str]] = set()
        self.once: dict[tuple[int, str], tuple[list[Issue], list[Issue], tuple[Rule, ...]]] = {}
        self.costs: dict[tuple[str, int | None, tuple[bool, bool]], Decimal | None] = {}
        self.by_sha = {a.sha256: a for a in manifest.assets.values() if isinstance(a, LocalAsset)}
        self.pattern = self._compile_pattern()

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
            hint = did_you_mean(model_id, self.catalog.ids(), cutoff=0.5)
            if isinstance(self.catalog, SnapshotCatalog) and self.catalog.offline:  # it may well exist
                message = f"'{model_id}' is not among the shipped model snapshots: set OXEN_API_KEY to fetch its schema"
                self.static_problem(source, message, hint)
            else:
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
        var_names = variable_names(self.manifest, spec)
        compiler = Compiler(self, spec, var_names)
        model_compiler = Compiler(self, spec, var_names - {"model"})
        model = model_compiler.compile(spec.model or self.manifest.model or "", _model_source(spec))
        fields, sources = request_fields(self.manifest, spec)
        request = compiler.compile_request(model, fields, sources)
        pattern_sources = self._pattern_sources(spec, var_names, fields)
        if model_compiler.failed_fields:
            return  # no model: nothing to check the request against
        size = expansion_size(self.manifest, spec)
        if self.index + size > MAX_JOBS:
            self.static_problem(
                ("jobs", spec.index), f"expands to {size} jobs; a plan may have at most {MAX_JOBS}"
            )
            return
        broken = frozenset(compiler.failed_fields)
        dynamic = tuple(name for name in compiler.dynamic_fields if name not in broken)
        const = tuple(name for name in fields if name not in compiler.dynamic_fields and name not in broken)
        asset_fields = tuple(compiler.asset_fields)
        fixed = model.render is None and not {"multi_prompt", "duration"} & set(dynamic)
        plan = _SpecPlan(
            spec,
            model,
            request,
            sources,
            pattern_sources,
            asset_fields,
            dynamic,
            const,
            fixed,
            compiler.field_vars,
            broken,
        )
        for base, replica in expansions(self.manifest, spec):
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
        except RenderError as exc:
            if exc.name in self.manifest.refused_assets:
                return  # the manifest's checks said what is wrong with that asset
            where = self.manifest.positions.at(exc.source)
            path = request_path(exc.source)
            top = path[0] if path and isinstance(path[0], str) else ""
            used = plan.field_vars.get(top, set())
            self.row_finding(spec, used, base, replica, where, format_path(path), exc.message, exc.hint)
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
        for source, name, hint in parameter_typos(plan.sources, model.validator.known_parameters):
            message = f"unknown parameter '{name}' for {model.spec.id}"
            self.static_problem(source, message, hint + " (unknown parameters are sent as written)", key=True)

    def _finish_job(
        self, plan: _SpecPlan, model: _Model, request: dict[str, Any], base: Vars, v: Vars
    ) -> None:
        issues = self._validate(plan, model, request)
        for issue in issues:
            self._issue_finding(plan, base, v["replica"], issue)
        if issues or plan.broken or plan.pattern_sources is None:
            return  # keys and paths only for requests that are whole and valid
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
            rules = _unbroken(validator.rule_list, plan.broken)
            issues = merge_issues(
                validator.check_fields(request, request), validator.check_rules(request, rules)
            )
            return [issue for issue in issues if not (issue.path and issue.path[0] in plan.broken)]
        key = (plan.spec.index, model.spec.id)
        known = self.once.get(key)
        if known is None:
            dynamic, rules = set(plan.dynamic_fields), _unbroken(validator.rule_list, plan.broken)
            per_job = tuple(rule for rule in rules if rule.values & dynamic)
            once = [rule for rule in rules if rule not in per_job]
            schema_issues = validator.check_required(request) + validator.check_fields(
                request, plan.const_fields
            )
            known = self.once[key] = (schema_issues, validator.check_rules(request, once), per_job)
        schema_issues, rule_issues, per_job = known
        dynamic_issues = validator.check_fields(request, plan.dynamic_fields)
        return merge_issues(
            [*schema_issues, *dynamic_issues], [*rule_issues, *validator.check_rules(request, per_job)]
        )

    def _issue_finding(self, plan: _SpecPlan, base: Vars, replica: int, issue: Issue) -> None:
        top = issue.path[0] if issue.path else None
        source = plan.sources.get(top) if isinstance(top, str) else None
        if source is None:
            where = plan.spec.location
        else:
            where = self.manifest.positions.at((*source, *issue.path[1:]))
        field = format_path(issue.path)
        used = plan.field_vars.get(top, set()) if isinstance(top, str) else set()
        self.row_finding(plan.spec, used, base, replica, where, field, issue.message, issue.hint)

    def _output_path(
        self, plan: _SpecPlan, model: _Model, request: dict[str, Any], v: Vars, key: str
    ) -> str | None:
        pattern, sources = self.pattern, plan.pattern_sources
        assert pattern is not None and sources is not None  # _finish_job stops early without them
        written = pattern.extension
        if written is not None and written.lower() != model.extension:
            media = model.spec.media_type
            message = f"ends in '{written}', but {model.spec.id} makes {media}s: use {model.extension} or no extension"
            self.static_problem(("output", "pattern"), message)
            return None
        safe = {
            name: key[:KEY_CHARS] if kind == "key" else sanitise(v[name] if kind == "var" else request[name])
            for name, kind in sources
        }
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
        cost_key = (model.spec.id, seconds, quoted_options(request))
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
            collect_strings(request[name], strings)
        prefix = ASSET_PLACEHOLDER_PREFIX
        digests = dict.fromkeys(text[len(prefix) :] for text in strings if text.startswith(prefix))
        return tuple(self.by_sha[digest] for digest in digests if digest in self.by_sha)

    def _describe(self, job: Job, names: list[str], *, full: bool = True) -> str:
        values = [f"{k}={job.vars.get(k, '(unset)')}" for k in names[:4]]
        if full:
            values.insert(0, f"jobs[{self.spec_of[job.key]}] {job.name}, replica {job.replica}")
        return f"job #{job.index}" + (f" ({', '.join(values)})" if values else "")

    def _claim(self, plan: _SpecPlan, job: Job) -> bool:
        """Refuse a job whose key or output path an earlier job already has."""
        other = self.keys.get(job.key)
        if other is not None:
            names = differing_vars(other, job)
            first, this = self._describe(other, names), self._describe(job, names, full=False)
            message = f"{this} sends the same request (same key) as {first}"
            group = ("key", self.spec_of[other.key])
            self.finding(plan.spec, job.replica, job.location, "", message, duplicate_hint(names), group)
            return False
        owner = self.paths.claim(job.output_path, job)
        if owner is not None:
            names = differing_vars(owner, job)
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


def _unbroken(rules: tuple[Rule, ...], broken: frozenset[str]) -> tuple[Rule, ...]:
    """The rules that read no field whose template failed (its text is not the value it stands for)."""
    return tuple(rule for rule in rules if not rule.values & broken) if broken else rules


def _model_source(spec: JobSpec) -> PathTuple:
    return ("jobs", spec.index, "model") if spec.model is not None else ("model",)


def build_plan(manifest: Manifest, catalog: ModelCatalog) -> Plan:
    """Expand, template, key, place, validate and quote every job; raise ManifestError with all problems."""
    planner = _Planner(manifest, catalog)
    with no_gc_pauses():
        for spec in manifest.jobs:
            planner.plan_spec(spec)
    problems = sort_problems([*manifest.problems, *planner.all_problems()], manifest.file)
    if problems:
        raise ManifestError(problems)
    jobs = titled(planner.jobs, (manifest.report or {}).get("title"))
    plan = Plan(manifest.path, manifest.name, jobs, None)
    defaults = {
        model_id: echoable_defaults(model.spec) for model_id, model in planner.models.items() if model
    }
    return Plan(manifest.path, manifest.name, jobs, plan.cost_of(jobs), defaults)

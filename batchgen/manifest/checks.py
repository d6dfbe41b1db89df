"""Checking manifest data: its JSON Schema (errors as located problems), then the semantic checks.

The semantic checks are those the schema cannot express: safe names, unique job names, built-in
variables, loading the assets and rows the manifest names, and the fields `report:` names
(batchgen.manifest.report_key).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.errors import Problem
from batchgen.manifest.assets import load_asset
from batchgen.manifest.model import BUILTIN_VARS, RESERVED_NAMES, Asset, Location, PathTuple, Positions, Rows
from batchgen.manifest.report_key import check_report
from batchgen.manifest.rows import load_rows
from batchgen.target import (
    DELIVER_PATH_DEFAULT,
    branch_problem,
    name_problem,
    path_problem,
    render_path,
    repo_problem,
    template_variables,
)
from batchgen.wording import describe_error, describe_value, did_you_mean, format_path, frozen_json

if TYPE_CHECKING:
    import jsonschema

__all__ = ["Checker", "Found", "manifest_schema", "schema_problems"]

#: A problem and the manifest path it is about (load_manifest decides from it what planning may still read).
Found = tuple[PathTuple, Problem]

_SAFE_NAME = re.compile(r"\w[\w.-]*")
_HINTS = {
    ("version",): "start the manifest with `version: 1`",
    ("name",): "it names the run directory: e.g. `name: spring-campaign`",
    ("jobs",): "list at least one job: `jobs: [{name: hero, prompt: ...}]`",
    ("jobs", "name"): "every job needs a name: `- name: hero`",
    ("upload", "namespace"): "e.g. `upload: {namespace: acme, repo: assets}`",
    ("upload", "repo"): "e.g. `upload: {namespace: acme, repo: assets}`",
    ("deliver", "repo"): "e.g. `deliver: {repo: meadow/campaigns, path: 'campaigns/{name}'}`",
}
# Repository names, branches and paths: batchgen.target says what is wrong with a value, and
# the Checker reports it (the schema's patterns, for editors, cannot say the rule, nor name every
# Unicode format character). What each is called in a message, and its check:
_TARGET_RULES: dict[PathTuple, tuple[str, Callable[[str], str | None]]] = {
    ("upload", "namespace"): ("the namespace", name_problem),
    ("upload", "repo"): ("the repository name", name_problem),
    ("upload", "branch"): ("the branch", branch_problem),
    ("upload", "prefix"): ("the upload prefix", path_problem),
    ("deliver", "repo"): ("the repository", repo_problem),
    ("deliver", "branch"): ("the branch", branch_problem),
}
_DEFAULTS_HINTS = {
    "model": "set `model:` at the top level (for every job) or in a job",
}


@cache
def _schema_text() -> str:
    return resources.files("batchgen").joinpath("data", "manifest.schema.json").read_text("utf-8")


def manifest_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (draft 2020-12), as shipped in batchgen/data/manifest.schema.json."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


@cache
def _validator() -> jsonschema.Draft202012Validator:
    import jsonschema  # on first use: importing batchgen.manifest stays light (see tests/test_layout.py)

    draft = jsonschema.Draft202012Validator
    check_items = draft.VALIDATORS["items"]

    def items(validator: Any, schema: Any, instance: Any, parent: dict[str, Any]) -> Iterator[Any]:
        # A long list of plain values (a large `matrix:` axis) is checked in one pass; only a list
        # with a wrong value goes through jsonschema item by item, for its located errors.
        if isinstance(instance, list) and isinstance(schema, dict) and set(schema) == {"type"}:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if all(_is_plain(item, types) for item in instance):
                return
        yield from check_items(validator, schema, instance, parent)

    def unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
        # jsonschema compares a list it cannot sort (strings mixed with numbers) pair by pair: a
        # 100,000-value axis would take hours. Hashing each value's frozen form is one pass.
        if unique and isinstance(instance, list) and len(set(map(frozen_json, instance))) < len(instance):
            yield jsonschema.ValidationError("has non-unique elements")

    fast = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        draft, {"items": items, "uniqueItems": unique_items}
    )
    validator: jsonschema.Draft202012Validator = fast(_inline_refs(manifest_schema()))
    return validator


_PLAIN_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}


def _is_plain(value: Any, types: list[str]) -> bool:
    """Whether `value` is one of the JSON Schema `types` ("string", "number", "integer", "boolean")."""
    for name in types:
        kinds = _PLAIN_TYPES.get(name)
        if kinds is None:
            return False  # another type: leave it to jsonschema
        if isinstance(value, kinds) and (name == "boolean" or not isinstance(value, bool)):
            return True
    return False


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with each `{"$ref": "#/$defs/x"}` replaced by the definition itself.

    Same meaning, but jsonschema then checks the 100,000 values of a large `matrix:` without a
    reference lookup each (about half of the check's time). A definition that refers to itself is kept
    as a reference.
    """
    definitions: dict[str, Any] = schema.get("$defs", {})

    def inline(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [inline(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if len(node) == 1 and isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in definitions and name not in seen:
                return inline(definitions[name], seen | {name})
        return {key: inline(value, seen) for key, value in node.items()}

    inlined: dict[str, Any] = inline(schema, frozenset())
    return inlined


def schema_problems(data: Any, positions: Positions) -> Iterator[Found]:
    """Where `data` breaks the manifest's JSON Schema, as located problems."""
    for error in _validator().iter_errors(data):
        yield from _error_problems(error, positions)


def _error_problems(error: jsonschema.ValidationError, positions: Positions) -> Iterator[Found]:
    path: PathTuple = tuple(error.absolute_path)
    rule = _TARGET_RULES.get(path)
    if rule and isinstance(error.instance, str) and rule[1](error.instance):
        return  # the Checker reports it, saying the rule (Checker._check_target_names)
    if "propertyNames" in error.schema_path:
        yield _name_problem(error, path, positions)
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        known = list(schema.get("properties", {}))
        for key in [k for k in error.instance if k not in known]:
            hint = did_you_mean(key, known) or "allowed here: " + ", ".join(known)
            yield _problem(positions.at((*path, key), key=True), (*path, key), f"unknown key '{key}'", hint)
    elif error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        for key in [k for k in required if k not in error.instance]:
            context = tuple(p for p in path if isinstance(p, str))
            where = positions.at(path)
            yield _problem(where, path, f"missing required key '{key}'", _HINTS.get((*context, key)))
    else:
        yield _problem(positions.at(path), path, describe_error(error), _value_hint(path, error.instance))


def _name_problem(error: jsonschema.ValidationError, path: PathTuple, positions: Positions) -> Found:
    key = str(error.instance)
    where = positions.at((*path, key), key=True)
    if error.validator == "not":
        message = f"'{key}' cannot be set in defaults"
        return _problem(where, (*path, key), message, _DEFAULTS_HINTS.get(key, f"set `{key}:` in each job"))
    if path and path[-1] == "assets":
        message = f"'{key}' is not a valid asset name: use letters, digits, '_', '.' and '-'"
    else:
        message = (
            f"'{key}' is not a valid variable name: use letters, digits and '_', not starting with a digit"
        )
    return _problem(where, (*path, key), message)


def _value_hint(path: PathTuple, value: Any) -> str | None:
    if path[:1] == ("notify",):
        return (
            "notify: [{command: [mail, -s, SUBJECT, ADDRESS]}, {webhook: 'https://…', timeout_s: 30}]: "
            "a command is an argv list (never run by a shell), a webhook an http(s) URL; one of them per entry"
        )
    if path == ("run", "halt_after_failures"):
        return 'a count of failed jobs such as 25, or a share of the finished ones such as "10%"'
    if path[:1] == ("deliver",) and path[-1:] in (("repo",), ("branch",)):
        return "deliver: {repo: NAMESPACE/NAME, branch: BRANCH}, e.g. {repo: meadow/campaigns, branch: main}"
    if path and path[-1] == "num_generations":
        count = value if isinstance(value, int) and not isinstance(value, bool) and value > 1 else "N"
        return (
            f"batchgen tracks every generation as its own job (own key, retry and file): "
            f"use `repeat: {count}` for {count} generations of the same request"
        )
    return None


def _problem(where: Location, path: PathTuple, message: str, hint: str | None = None) -> Found:
    return path, Problem(where.file, where.line, where.column, format_path(path), message, hint)


class Checker:
    """Semantic checks on schema-shaped data (each guarded, since the schema may have failed)."""

    def __init__(self, data: dict[str, Any], positions: Positions, base: Path) -> None:
        self.data = data
        self.positions = positions
        self.base = base
        self.problems: list[Found] = []
        self.assets: dict[str, Asset] = {}
        self.rows: dict[PathTuple, Rows] = {}

    def add(self, path: PathTuple, message: str, hint: str | None = None, *, key: bool = False) -> None:
        self.problems.append(_problem(self.positions.at(path, key=key), path, message, hint))

    def run(self) -> None:
        self._check_safe_name(("name",), self.data.get("name"), "it names the run directory")
        self._check_assets()
        self._check_var_sources((), self.data)
        self._check_target_names()
        self._check_deliver_path()
        jobs = self.data.get("jobs")
        names: dict[str, int] = {}
        for i, job in enumerate(jobs if isinstance(jobs, list) else []):
            if isinstance(job, dict):
                self._check_job(i, job, names)
        check_report(self.data, self.rows, self.add)

    def _check_safe_name(self, path: PathTuple, name: Any, what: str) -> None:
        if not isinstance(name, str) or not name:
            return
        ok = _SAFE_NAME.fullmatch(name) and not name.endswith(".") and len(name) <= 100
        reserved = name.split(".")[0].upper() in RESERVED_NAMES
        if not ok or reserved:
            message = f"{describe_value(name)} is not a safe name: use letters, digits, '.', '_' and '-'"
            if reserved:
                message = f"{describe_value(name)} is a reserved file name on Windows"
            suggestion = re.sub(r"[^\w.-]+", "-", name).strip(".-")[:100] or "my-name"
            suggestion += "-1" if reserved else ""
            self.add(path, message, f"{what}: e.g. '{suggestion}'")

    def _check_target_names(self) -> None:
        """`upload:` and `deliver:` names, branches and the upload prefix, by the rules the command
        line's --deliver and --upload-repo follow too (batchgen.target)."""
        for path, (what, problem_of) in _TARGET_RULES.items():
            section, key = self.data.get(str(path[0])), path[1]
            value = section.get(key) if isinstance(section, dict) else None
            problem = problem_of(value) if isinstance(value, str) else None
            if problem:
                self.add(path, f"{what} {value!r} {problem}")

    def _check_deliver_path(self) -> None:
        deliver, name, variables = self.data.get("deliver"), self.data.get("name"), self.data.get("vars")
        path = deliver.get("path", DELIVER_PATH_DEFAULT) if isinstance(deliver, dict) else None
        if isinstance(path, str) and path and isinstance(name, str):
            try:
                render_path(path, template_variables(name, variables if isinstance(variables, dict) else {}))
            except ValueError as exc:
                self.add(
                    ("deliver", "path"), str(exc), "a directory inside the repository, e.g. campaigns/{name}"
                )

    def _check_assets(self) -> None:
        assets = self.data.get("assets")
        for name, value in assets.items() if isinstance(assets, dict) else ():
            if isinstance(value, str) and value:
                loaded = load_asset(name, value, self.base)
                if isinstance(loaded, str):
                    self.add(("assets", name), loaded)
                else:
                    self.assets[name] = loaded

    def _check_var_sources(self, prefix: PathTuple, node: dict[str, Any]) -> None:
        for section in ("vars", "matrix"):
            names = node.get(section)
            for name in names if isinstance(names, dict) else ():
                if name in BUILTIN_VARS:
                    self.add(
                        (*prefix, section, name),
                        f"'{name}' is a built-in variable",
                        "choose another name",
                        key=True,
                    )
        rows = node.get("rows")
        if isinstance(rows, str) and rows:
            path = (*prefix, "rows")
            loaded = load_rows(
                rows, self.base, self.positions.file, self.positions.at(path), format_path(path)
            )
            if isinstance(loaded, list):
                self.problems.extend((path, problem) for problem in loaded)
            else:
                self.rows[path] = loaded

    def _check_job(self, i: int, job: dict[str, Any], names: dict[str, int]) -> None:
        name = job.get("name")
        self._check_safe_name(("jobs", i, "name"), name, "job names appear in file names")
        if isinstance(name, str):
            if name in names:
                first = names[name]
                line = self.positions.at(("jobs", first, "name")).line
                self.add(
                    ("jobs", i, "name"), f"job name '{name}' is already used by jobs[{first}] (line {line})"
                )
            names.setdefault(name, i)
        self._check_var_sources(("jobs", i), job)
        if "model" not in job and not self.data.get("model"):
            self.add(
                ("jobs", i),
                "no model is set for this job",
                "set `model:` at the top level (for every job) or in this job",
            )

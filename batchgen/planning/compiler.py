"""The template compiler: a job spec's templated values -> constants, or renderers of a job's variables.

Each value is compiled once per job spec; expanding a spec to many jobs then only calls renderers.
Problems that hold for every job (unknown variables or assets, syntax) are reported once, at compile
time, and the fields they are in are `failed_fields` (the rest of the request is still checked);
those that depend on a job's values (`{asset:$v}` naming no asset) raise `RenderError`. An asset
the manifest's own checks refused (`Manifest.refused_assets`) is not reported again by the compiler:
the field naming it just fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batchgen.manifest.model import Asset, JobSpec, LocalAsset, PathTuple, UrlAsset
from batchgen.planning.expansion import Vars
from batchgen.planning.problems import PlanProblems
from batchgen.planning.templates import AssetRef, TemplateSyntaxError, Var, parse_template
from batchgen.wording import did_you_mean

__all__ = ["Compiled", "Compiler", "RenderError", "Renderer", "collect_strings"]


class RenderError(Exception):
    """A template that only fails for some values (e.g. `{asset:$v}` where v names no asset)."""

    def __init__(self, source: PathTuple, message: str, hint: str | None = None, *, name: Any = None) -> None:
        super().__init__(message)
        self.source = source
        self.message = message
        self.hint = hint
        self.name = name  # the asset name looked for


Renderer = Callable[[Vars], Any]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A value whose result is `value` (constant) or `render(vars)` (dynamic)."""

    value: Any = None
    render: Renderer | None = None


class Compiler:
    """Compiles the templated values of one job spec against its known variables and the assets."""

    def __init__(self, planner: PlanProblems, spec: JobSpec, var_names: frozenset[str]) -> None:
        self.planner = planner
        self.spec = spec
        self.var_names = var_names
        self.assets = planner.manifest.assets
        self.refused = planner.manifest.refused_assets
        self.asset_fields: dict[str, None] = {}  # top-level request fields holding asset references
        self.field = ""  # the top-level request field being compiled
        self.dynamic_fields: tuple[str, ...] = ()  # top-level request fields that hold templates
        self.field_vars: dict[str, set[str]] = {}  # top-level request field -> the variables it reads
        self.failed_fields: set[str] = set()  # top-level request fields (or "" outside one) that failed

    def problem(
        self, source: PathTuple, message: str, hint: str | None = None, *, per_spec: bool = False
    ) -> None:
        """Record a problem; `per_spec` ones in shared fields (defaults) name the job spec they fail for."""
        self.failed_fields.add(self.field)
        if per_spec and source[:2] != ("jobs", self.spec.index):
            message += f" (for job '{self.spec.name}')"
        self.planner.static_problem(source, message, hint)

    def compile(self, value: Any, source: PathTuple) -> Compiled:
        if isinstance(value, str):
            return self._string(value, source)
        if isinstance(value, dict):
            return self._dict(value, source)
        if isinstance(value, list):
            return self._list(value, source)
        return Compiled(value)

    def compile_request(
        self, model: Compiled, fields: dict[str, Any], sources: dict[str, PathTuple]
    ) -> Compiled:
        """The request: the model first, then the fields, each compiled where it was written."""
        model_item = model if model.render is None else Compiled(render=lambda v: v["model"])
        items = [("model", model_item)]
        for name, value in fields.items():
            self.field = name
            items.append((name, self.compile(value, sources[name])))
        self.dynamic_fields = tuple(name for name, c in items[1:] if c.render is not None)
        return _combine(items)

    def _dict(self, value: dict[str, Any], source: PathTuple) -> Compiled:
        return _combine([(k, self.compile(v, (*source, k))) for k, v in value.items()])

    def _list(self, value: list[Any], source: PathTuple) -> Compiled:
        items = [self.compile(v, (*source, i)) for i, v in enumerate(value)]
        if all(c.render is None for c in items):
            return Compiled([c.value for c in items])
        pairs = [(c.render, c.value) for c in items]
        return Compiled(render=lambda v: [fn(v) if fn is not None else const for fn, const in pairs])

    def _string(self, text: str, source: PathTuple) -> Compiled:
        try:
            template = parse_template(text)
        except TemplateSyntaxError as exc:
            self.problem(source, exc.message)
            return Compiled(text)
        if template.is_constant:
            return Compiled(template.text)
        if not self._check_names(template, source):
            return Compiled(text)
        single = template.single
        if isinstance(single, Var):
            name = single.name
            return Compiled(render=lambda v: v[name])
        if isinstance(single, AssetRef):
            return self._whole_asset(single, source)
        return self._joined(template.parts, source)

    def _check_names(self, template: Any, source: PathTuple) -> bool:
        ok = True
        self.field_vars.setdefault(self.field, set()).update(template.var_names())
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
        if asset is None and name in self.refused:
            self.failed_fields.add(self.field)
            return False
        if asset is None:
            hint = did_you_mean(name, self.assets) or "define it under `assets:`"
            self.problem(source, f"unknown asset '{name}'", hint)
            return False
        if isinstance(asset, LocalAsset) and template.single is None:
            self.problem(source, *_embedded_local(name))
            return False
        return True

    def _whole_asset(self, ref: AssetRef, source: PathTuple) -> Compiled:
        if not ref.via_var:
            return Compiled(_asset_value(self.assets[ref.name]))
        var, assets = ref.name, self.assets
        return Compiled(render=lambda v: _asset_value(_asset_by_var(assets, var, v[var], source)))

    def _joined(self, parts: tuple[Any, ...], source: PathTuple) -> Compiled:
        if not any(isinstance(p, AssetRef) and p.via_var for p in parts):
            fmt = "".join(_format_piece(p, self.assets) for p in parts)
            return Compiled(render=lambda v: fmt.format_map(v))
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

        return Compiled(render=render)


def _combine(items: list[tuple[str, Compiled]]) -> Compiled:
    """A mapping of compiled values: constant if all are, else a renderer filling the dynamic ones."""
    dynamic = [(k, c.render) for k, c in items if c.render is not None]
    if not dynamic:
        return Compiled({k: c.value for k, c in items})
    base = {k: c.value for k, c in items}

    def render(v: Vars) -> Any:
        out = dict(base)
        for k, fn in dynamic:
            out[k] = fn(v)
        return out

    return Compiled(render=render)


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
        message = f"variable '{var}' is {json.dumps(value)}, which names no asset"
        raise RenderError(source, message, hint, name=value)
    return asset


def _embedded_url(assets: Mapping[str, Asset], ref: AssetRef, v: Vars, source: PathTuple) -> str:
    asset = _asset_by_var(assets, ref.name, v[ref.name], source)
    if isinstance(asset, LocalAsset):
        raise RenderError(source, *_embedded_local(asset.name))
    return asset.url


def collect_strings(value: Any, into: list[str]) -> None:
    """Every string inside `value` (a request field), depth first."""
    if type(value) is str:
        into.append(value)
    elif type(value) is dict:
        for item in value.values():
            collect_strings(item, into)
    elif type(value) is list:
        for item in value:
            collect_strings(item, into)

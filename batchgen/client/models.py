"""The live model registry and its cache in the run directory: which descriptions a run plans with.

The live registry when there is a key, cached in the run directory; the snapshots shipped with the
package when offline. With a key, `GET /api/ai/models/{id}` is read for every model the manifest
names, shipped ones included, so a price or schema change at Oxen is seen (and said, in one line)
instead of a budget being enforced with a stale price. If the registry cannot be reached, the copy
cached in the run directory by an earlier run serves, then the shipped snapshot, each said so.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.errors import ApiError, ModelDescriptionError, NotFound
from batchgen.manifest import Manifest
from batchgen.registry.catalog import ChainCatalog, ModelCatalog, SnapshotCatalog
from batchgen.registry.pricing import rate
from batchgen.registry.spec import ModelSpec
from batchgen.rundir.layout import MODELS_DIR, model_file_name

if TYPE_CHECKING:
    from batchgen.client.api import OxenClient

log = logging.getLogger(__name__)

CACHE_FRESH_S = 3600.0  # a description read live this recently is reused (a resume does not re-read it)
_VALIDATING_KEYWORDS = (
    "type",
    "enum",
    "const",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
    "items",
    "required",
    "nullable",
)


@dataclass(slots=True)
class Catalog:
    """The catalog to plan with, what was read live (to cache), and what to tell the user."""

    catalog: ModelCatalog
    live: list[ModelSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def manifest_model_ids(manifest: Manifest) -> set[str]:
    """Model ids written literally in the manifest (templated ones are resolved by the plan)."""
    ids = {manifest.model} | {spec.model for spec in manifest.jobs}
    return {i for i in ids if i and "{" not in i}


def snapshot_date(spec: ModelSpec) -> str:
    return str(spec.raw.get("x-batchgen-snapshot") or "an unknown date")


def offline_catalog(manifest: Manifest) -> Catalog:
    """The snapshots shipped with batchgen, and a note per model saying so: nothing leaves the machine
    (and no event loop is needed, so an offline `plan` starts as fast as it can)."""
    shipped = SnapshotCatalog(offline=True)
    notes = [
        f"{i}: validated and quoted with the snapshot shipped with batchgen, of {snapshot_date(spec)} "
        "(offline: set OXEN_API_KEY to read the live model registry)"
        for i in sorted(manifest_model_ids(manifest))
        if (spec := shipped.get(i)) is not None
    ]
    return Catalog(shipped, notes=notes)


async def model_catalog(
    client: OxenClient | None, manifest: Manifest, *, run_dir: Path | None = None
) -> Catalog:
    """Live descriptions first (when there is a client), then the run directory's cache, then the
    shipped snapshots. A model nobody knows is left out, so the plan reports it with a hint."""
    if client is None:
        return offline_catalog(manifest)
    shipped = SnapshotCatalog()
    ids = sorted(manifest_model_ids(manifest))
    result = Catalog(shipped)
    cached: list[ModelSpec] = []
    for model_id in ids:
        fresh = read_cached(run_dir, model_id, max_age_s=CACHE_FRESH_S) if run_dir is not None else None
        if fresh is not None:
            cached.append(fresh)
            continue
        try:
            spec = ModelSpec.from_api(await client.get_model(model_id), model_id)
        except NotFound:
            if (snapshot := shipped.get(model_id)) is not None:
                result.notes.append(
                    f"{model_id}: not in the live model registry; validated with the shipped "
                    f"snapshot of {snapshot_date(snapshot)}, but the API may reject it"
                )
            continue
        except ApiError as exc:
            cached.extend(_fall_back(model_id, exc, run_dir, shipped, result.notes))
            continue
        result.live.append(spec)
        if (snapshot := shipped.get(model_id)) is not None:
            result.notes.extend(f"{model_id}: {change}" for change in describe_changes(snapshot, spec))
    result.catalog = ChainCatalog(SnapshotCatalog(result.live), SnapshotCatalog(cached), shipped)
    return result


def _fall_back(
    model_id: str, exc: ApiError, run_dir: Path | None, shipped: SnapshotCatalog, notes: list[str]
) -> list[ModelSpec]:
    cached = read_cached(run_dir, model_id) if run_dir is not None else None
    if cached is not None:
        notes.append(
            f"{model_id}: the live model registry did not answer ({exc}); using the description "
            "cached in the run directory by an earlier run"
        )
        return [cached]
    if (snapshot := shipped.get(model_id)) is not None:
        notes.append(
            f"{model_id}: the live model registry did not answer ({exc}); using the shipped "
            f"snapshot of {snapshot_date(snapshot)}"
        )
    return []


def read_cached(run_dir: Path, model_id: str, *, max_age_s: float | None = None) -> ModelSpec | None:
    """The description an earlier run read live (None if absent, unreadable or older than `max_age_s`)."""
    path = run_dir / MODELS_DIR / f"{model_file_name(model_id)}.json"
    try:
        if max_age_s is not None and time.time() - path.stat().st_mtime > max_age_s:
            return None
        return ModelSpec.from_api(json.loads(path.read_text(encoding="utf-8")), model_id)
    except (OSError, ValueError, ModelDescriptionError):
        return None


def describe_changes(snapshot: ModelSpec, live: ModelSpec) -> list[str]:
    """What differs, for validation or quoting, between the shipped snapshot and the live registry."""
    changes = []
    old_price, new_price = _price_text(snapshot.pricing), _price_text(live.pricing)
    if old_price != new_price:
        changes.append(
            f"the live price ({new_price}) differs from the shipped snapshot's ({old_price}); "
            "quoting with the live one"
        )
    old_schema, new_schema = _validating(snapshot.request_schema), _validating(live.request_schema)
    if old_schema != new_schema:
        changed = sorted(
            {*old_schema, *new_schema} - {k for k in old_schema if old_schema[k] == new_schema.get(k)}
        )
        changes.append(
            f"the live request schema differs from the shipped snapshot's ({', '.join(changed)}); "
            "validating with the live one"
        )
    return changes


def _price_text(pricing: Mapping[str, Any] | None) -> str:
    if not pricing:
        return "no price"
    parts = [str(pricing.get("method"))]
    for name in sorted(pricing):
        value = rate(pricing[name])
        if name.startswith("cost") and value is not None:
            parts.append(f"{name} {value.normalize()}")
    return ", ".join(parts)


def _validating(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per property (and '(required)'), only the keywords that change what validates."""
    if not isinstance(schema, Mapping):
        return {}
    properties = schema.get("properties")
    found: dict[str, Any] = {"(required)": sorted(schema.get("required") or [])}
    for name, prop in properties.items() if isinstance(properties, Mapping) else ():
        if isinstance(prop, Mapping):
            found[name] = {k: _unordered(k, prop[k]) for k in _VALIDATING_KEYWORDS if k in prop}
    return found


def _unordered(keyword: str, value: Any) -> Any:
    """An enum's (or required list's) order does not change what validates."""
    if keyword in ("enum", "required") and isinstance(value, list):
        return sorted(value, key=lambda item: json.dumps(item, sort_keys=True))
    return value

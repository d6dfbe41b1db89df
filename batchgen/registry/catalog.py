"""Model catalogs: looking a model up by id in the shipped snapshots, in given specs, or in a chain.

The only I/O here is reading the model snapshots shipped in `batchgen/data/models/`; the live
registry and the run directory's cache are in `batchgen.client.models`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from typing import Protocol

from batchgen.registry.spec import ModelSpec

__all__ = ["ChainCatalog", "ModelCatalog", "SnapshotCatalog"]


class ModelCatalog(Protocol):
    """Anything that can look a model up by id (snapshots, the live registry, a chain of both) and list
    the ids it knows (for "did you mean" on an unknown model)."""

    def get(self, model_id: str) -> ModelSpec | None: ...

    def ids(self) -> tuple[str, ...]: ...


class SnapshotCatalog:
    """Model specs; by default the snapshots shipped with batchgen (JSON files). `offline`:
    it stands in for a registry nobody asked (no key), so a model missing here may well exist."""

    def __init__(self, specs: Iterable[ModelSpec] | None = None, *, offline: bool = False) -> None:
        self._specs = {s.id: s for s in (_shipped_specs() if specs is None else specs)}
        self.offline = offline

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
        return next(filter(None, (catalog.get(model_id) for catalog in self._catalogs)), None)

    def ids(self) -> tuple[str, ...]:
        return tuple(sorted({model_id for catalog in self._catalogs for model_id in catalog.ids()}))

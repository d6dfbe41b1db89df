"""The model registry: loaded from data/models.json, served by /api/ai/models."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

MediaType = Literal["video", "image"]


@dataclass(frozen=True)
class ModelSpec:
    id: str
    media_type: MediaType | None  # None: text-only, rejected by the queue
    rules: str
    public: dict[str, Any]  # the object served to clients; treat as read-only

    @property
    def pricing(self) -> dict[str, Any]:
        pricing: dict[str, Any] = self.public.get("pricing") or {}
        return pricing


class Catalog:
    def __init__(self, specs: list[ModelSpec]) -> None:
        self._specs = {spec.id: spec for spec in specs}

    def get(self, model_id: str) -> ModelSpec | None:
        return self._specs.get(model_id)

    def copy(self) -> Catalog:
        """An independent copy (each emulator gets its own, so a test changing one leaks nowhere)."""
        return Catalog(
            [ModelSpec(s.id, s.media_type, s.rules, copy.deepcopy(s.public)) for s in self._specs.values()]
        )

    def all(self) -> list[ModelSpec]:
        return list(self._specs.values())

    def search(self, text: str) -> list[ModelSpec]:
        needle = text.strip().lower()
        return [spec for spec in self._specs.values() if needle in _haystack(spec)]

    def by_developer(self, name: str) -> list[ModelSpec]:
        return [spec for spec in self._specs.values() if _developer(spec) == name.lower()]


def _developer(spec: ModelSpec) -> str:
    developer = spec.public.get("developer") or {}
    return str(developer.get("name", "")).lower()


def _haystack(spec: ModelSpec) -> str:
    parts = [spec.id, spec.public.get("display_name"), spec.public.get("description"), _developer(spec)]
    return " ".join(str(part) for part in parts if part).lower()


def _spec(entry: dict[str, Any]) -> ModelSpec:
    public = copy.deepcopy(entry["model"])
    public["json_request_schema"] = copy.deepcopy(public.get("request_schema"))
    return ModelSpec(id=public["id"], media_type=entry["media_type"], rules=entry["rules"], public=public)


@cache
def default_catalog() -> Catalog:
    text = resources.files("batchgen.emulator").joinpath("data/models.json").read_text("utf-8")
    return Catalog([_spec(entry) for entry in json.loads(text)["models"]])

"""`ModelSpec`: what batchgen knows about one model, read (and checked) from a registry answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchgen.errors import ModelDescriptionError
from batchgen.registry.hardening import Unusable, check_prices, check_size, checked_schema, json_kind
from batchgen.wording import describe_value

__all__ = ["ModelSpec"]


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
        except Unusable as exc:
            raise ModelDescriptionError(model_id, str(exc)) from None

    @classmethod
    def _checked(cls, obj: Any) -> ModelSpec:
        if not isinstance(obj, Mapping):
            raise Unusable(f"expected a JSON object describing the model, got {json_kind(obj)}")
        check_size(obj, "its description")
        own_id = obj.get("id") or obj.get("name")
        if not isinstance(own_id, str) or not own_id:
            raise Unusable(f"it has no 'id' (the answer was {describe_value(obj, 120)})")
        schema = obj.get("request_schema") or obj.get("json_request_schema")
        if schema is not None and not isinstance(schema, Mapping):
            raise Unusable(f"its request schema is {json_kind(schema)}, not a JSON object")
        pricing = obj.get("pricing")
        pricing = pricing if isinstance(pricing, Mapping) else None
        check_prices(pricing)
        return cls(
            id=own_id,
            media_type=_media_type(obj),
            request_schema=None if schema is None else checked_schema(schema),
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
